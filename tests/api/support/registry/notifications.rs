//! A receiver of the registry's webhook POSTs.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::http::{Handler, HttpRequest, HttpResponse, MiniServer, header_value};

/// One webhook POST, byte for byte.
#[derive(Clone, Debug)]
pub struct ReceivedEnvelope {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Parsed body (`Value::Null` if it was not JSON).
    pub json: Value,
}

impl ReceivedEnvelope {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
    pub fn events(&self) -> Vec<Value> {
        self.json["events"].as_array().cloned().unwrap_or_default()
    }
}

/// Records every POST to `/registry-events` (any path is accepted). `fail_first(n)` makes it
/// answer 500 to the first n POSTs (to exercise the registry's retries).
pub struct NotificationReceiver {
    server: MiniServer,
    envelopes: Arc<Mutex<Vec<ReceivedEnvelope>>>,
    fail_left: Arc<AtomicUsize>,
}

impl NotificationReceiver {
    pub fn start() -> Self {
        Self::start_failing_first(0)
    }
    pub fn start_failing_first(fail_first: usize) -> Self {
        let envelopes: Arc<Mutex<Vec<ReceivedEnvelope>>> = Arc::default();
        let fail_left = Arc::new(AtomicUsize::new(fail_first));
        let (env2, fail2) = (envelopes.clone(), fail_left.clone());
        let handler: Handler = Arc::new(move |req: &HttpRequest| {
            if req.method != "POST" {
                return HttpResponse::new(404);
            }
            if fail2
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return HttpResponse::new(500);
            }
            let json = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            env2.lock().expect("lock").push(ReceivedEnvelope {
                headers: req.headers.clone(),
                body: req.body.clone(),
                json,
            });
            HttpResponse::new(200)
        });
        let server = MiniServer::start("notification-receiver", handler);
        NotificationReceiver {
            server,
            envelopes,
            fail_left,
        }
    }
    /// `http://127.0.0.1:PORT/registry-events`
    pub fn url(&self) -> String {
        format!("{}/registry-events", self.server.url())
    }
    pub fn envelopes(&self) -> Vec<ReceivedEnvelope> {
        self.envelopes.lock().expect("lock").clone()
    }
    /// All events of all envelopes, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.envelopes()
            .iter()
            .flat_map(ReceivedEnvelope::events)
            .collect()
    }
    /// Poll (every 20 ms) until an event matches `pred`; panics after `timeout` listing what
    /// arrived. Returns the event and its envelope.
    pub async fn wait_for_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, ReceivedEnvelope) {
        let deadline = Instant::now() + timeout;
        loop {
            for env in self.envelopes() {
                if let Some(ev) = env.events().into_iter().find(|e| pred(e)) {
                    return (ev, env);
                }
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .events()
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} {} {}",
                            e["action"],
                            e["target"]["mediaType"],
                            e["target"]["repository"],
                            e["target"]["digest"]
                        )
                    })
                    .collect();
                panic!(
                    "no matching notification within {timeout:?}; received:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
