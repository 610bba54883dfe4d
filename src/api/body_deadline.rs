//! A deadline for reading request bodies, so a client that declares a large body and trickles it
//! cannot hold a connection (and the handler waiting for it) forever. As Apache's mod_reqtimeout
//! does it: the body may take `timeout`, plus one second for every `min_rate` bytes received, so
//! a large upload at a reasonable rate is never cut off. A body that misses its deadline is
//! answered 408 and the connection is closed.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline {
    /// The time any body may take.
    pub timeout: Duration,
    /// Bytes per second that earn a body one more second.
    pub min_rate: u64,
}

impl Default for BodyDeadline {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            min_rate: 16 * 1024,
        }
    }
}

impl BodyDeadline {
    /// When a body that began at `started` and has delivered `received` bytes must have gone on.
    fn due(&self, started: Instant, received: u64) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate.max(1) as f64);
        // At most a day is earned, which also keeps the instant in range.
        started + self.timeout + earned.min(Duration::from_secs(24 * 3600))
    }
}

/// Middleware: puts the request body under the app's [`BodyDeadline`] (app data) and answers 408,
/// closing the connection, when the handler's read of it ran out of time.
pub async fn enforce(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let deadline = req
        .app_data::<web::Data<BodyDeadline>>()
        .map(|d| *d.get_ref())
        .unwrap_or_default();
    let expired = Rc::new(Cell::new(false));
    match req.take_payload() {
        Payload::None => req.set_payload(Payload::None),
        body => req.set_payload(Payload::Stream {
            payload: Box::pin(Deadlined::new(body, deadline, expired.clone())),
        }),
    }
    let response = next.call(req).await;
    if !expired.get() {
        return response.map(ServiceResponse::map_into_left_body);
    }
    let refusal = timed_out(deadline);
    match response {
        Ok(response) => Ok(response
            .into_response(refusal.error_response())
            .map_into_right_body()),
        Err(_) => Err(refusal.into()),
    }
}

fn timed_out(deadline: BodyDeadline) -> ApiError {
    ApiError::RequestTimeout(format!(
        "The request body did not arrive in time: a body may take {} s plus one second per {} bytes.",
        deadline.timeout.as_secs(),
        deadline.min_rate
    ))
}

/// The body stream, failing once it has been waited on past its deadline.
struct Deadlined {
    body: Payload,
    deadline: BodyDeadline,
    started: Instant,
    received: u64,
    sleep: Pin<Box<Sleep>>,
    expired: Rc<Cell<bool>>,
}

impl Deadlined {
    fn new(body: Payload, deadline: BodyDeadline, expired: Rc<Cell<bool>>) -> Self {
        let started = Instant::now();
        Self {
            body,
            deadline,
            started,
            received: 0,
            sleep: Box::pin(tokio::time::sleep_until(deadline.due(started, 0))),
            expired,
        }
    }
}

impl Stream for Deadlined {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Data already here is always delivered: only waiting for the client is timed.
        match Pin::new(&mut this.body).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                let due = this.deadline.due(this.started, this.received);
                this.sleep.as_mut().reset(due);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.expired.set(true);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}
