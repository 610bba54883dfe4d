//! Builds the application: database, migrations, authenticator, HTTP server on a bound listener.

use std::net::TcpListener;

use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use actix_web_prom::PrometheusMetricsBuilder;
use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, AppState, auth::Authenticator};
use crate::config::Settings;
use crate::jobs::advisory_sync::{self, Syncer};
use crate::jobs::engine::Engine;
use crate::jobs::queue::{self, Queue};
use crate::jobs::{exemptions, rescans};
use crate::store;

pub struct Application {
    port: u16,
    public_url: url::Url,
    server: actix_web::dev::Server,
    /// Stops the scan workers and the scheduler when the server stops.
    jobs: CancellationToken,
}

pub use actix_web::dev::ServerHandle;

impl Application {
    /// Connects, migrates and binds; `bind` may use port 0 (tests), see [`Application::port`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = settings.database.clone();
        let pool_size = settings.db_pool_size;
        let pool = tokio::task::spawn_blocking(move || -> anyhow::Result<store::Pool> {
            let pool = store::connect(&database, pool_size)?;
            let applied = store::migrate(&pool)?;
            if !applied.is_empty() {
                tracing::info!(migrations = ?applied, "applied database migrations");
            }
            Ok(pool)
        })
        .await??;
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let address = listener.local_addr()?;
        let public_url = match settings.public_url.clone() {
            Some(url) => url,
            None => url::Url::parse(&format!("http://{address}/"))
                .context("cannot derive the public URL")?,
        };
        let authenticator = web::Data::new(Authenticator::new(&settings.auth)?);
        let jobs = CancellationToken::new();
        let queue = Queue::new(pool.clone());
        let advisory_sync = Syncer::new(
            pool.clone(),
            settings.jobs.advisory_sync.clone(),
            Some(queue.clone()),
        )
        .map_err(|e| anyhow::anyhow!("cannot set up advisory syncing: {e}"))?;
        if settings.jobs.queue.workers > 0 {
            let engine = std::sync::Arc::new(Engine::new(pool.clone()));
            queue::spawn_workers(
                engine,
                queue.clone(),
                settings.jobs.queue.clone(),
                jobs.clone(),
            );
            queue::spawn_wakeups(settings.database.clone(), queue.clone(), jobs.clone());
            rescans::spawn_scheduler(
                pool.clone(),
                queue.clone(),
                settings.jobs.rescans.clone(),
                jobs.clone(),
            );
            advisory_sync::spawn_scheduler(advisory_sync.clone(), jobs.clone());
        }
        exemptions::spawn_sweeper(pool.clone(), settings.jobs.exemptions.clone(), jobs.clone());
        let state = web::Data::new(AppState {
            pool,
            public_url: public_url.clone(),
            queue,
            report_limits: settings.jobs.running_images,
            advisory_sync,
        });
        let body_deadline = web::Data::new(settings.request_body);
        let metrics = PrometheusMetricsBuilder::new("crowsnest")
            .exclude_regex("^/docs/.*")
            .exclude("/metrics")
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up metrics: {e}"))?;
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(api::body_deadline::enforce))
                .wrap(ErrorHandlers::new().default_handler(api::cloud_error_fallback))
                .wrap(metrics.clone())
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(body_deadline.clone())
                .app_data(authenticator.clone())
                .app_data(web::Data::new(metrics.registry.clone()))
                .route("/metrics", web::get().to(api::operations::metrics))
                .route(
                    "/openapi.json",
                    web::get().to(|| async { web::Json(api::ApiDoc::openapi()) }),
                )
                .service(
                    SwaggerUi::new("/docs/{_:.*}")
                        .url("/docs/openapi.json", api::ApiDoc::openapi()),
                )
                .route(
                    "/docs",
                    web::get().to(|| async {
                        actix_web::HttpResponse::PermanentRedirect()
                            .insert_header(("Location", "/docs/"))
                            .finish()
                    }),
                )
                .configure(api::configure)
                .default_service(web::to(api::not_found))
        })
        .listen(listener)?;
        if let Some(workers) = settings.http_workers {
            server = server.workers(workers.max(1));
        }
        tracing::info!(%address, %public_url, database = %settings.database.redacted(), workers = settings.jobs.queue.workers, "crowsnest is listening");
        Ok(Self {
            port: address.port(),
            public_url,
            server: server.run(),
            jobs,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests, signal handlers).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn public_url(&self) -> &url::Url {
        &self.public_url
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopped = self.server.await;
        self.jobs.cancel();
        stopped
    }
}
