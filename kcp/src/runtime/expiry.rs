//! A watch response that ends without a single byte is read as `410 Expired`.
//!
//! kcp v0.32.3's initializing and terminating virtual workspaces answer a watch from a
//! resourceVersion they no longer have with `200 OK` and an empty stream, where any Kubernetes
//! server sends an `ERROR` event with a 410. kube's watcher reads an empty stream as a watch
//! that timed out, and watches again from the same version: it never lists again, and never
//! sees another workspace. On a sharded kcp the initializer stopped seeing new workspaces
//! after a quiet spell, and the terminator deletions after its shard restarted. Given the 410
//! the server should have sent, the watcher lists again.
//!
//! A watch that was merely quiet until its timeout also ends empty when the server sends no
//! bookmarks; for it, this costs one list.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};

/// The event a Kubernetes server sends when a watch's resourceVersion is too old.
const EXPIRED: &[u8] = br#"{"type":"ERROR","object":{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"Expired","code":410,"message":"the server ended the watch without a single event (kcp's virtual workspaces answer an expired resourceVersion so); listing again"}}
"#;

/// Whether a request is a watch.
pub(crate) fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true"))
}

/// A response body that, when it is a successful watch's and ends having delivered nothing,
/// delivers [`EXPIRED`] before it ends.
pub(crate) struct ExpireIfEmpty<B> {
    inner: B,
    /// Still to decide: a successful watch that has delivered nothing yet.
    pending: bool,
    expired: bool,
}

impl<B> ExpireIfEmpty<B> {
    /// Wraps the body of a response to `request_was_watch` with `status`.
    fn new(inner: B, request_was_watch: bool, status: http::StatusCode) -> Self {
        Self {
            inner,
            pending: request_was_watch && status == http::StatusCode::OK,
            expired: false,
        }
    }
}

/// The response with its body wrapped in [`ExpireIfEmpty`].
pub(crate) fn expire_if_empty<B>(
    response: http::Response<B>,
    request_was_watch: bool,
) -> http::Response<ExpireIfEmpty<B>> {
    let status = response.status();
    response.map(|body| ExpireIfEmpty::new(body, request_was_watch, status))
}

impl<B> HttpBody for ExpireIfEmpty<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if self.expired {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if frame.data_ref().is_some_and(|data| !data.is_empty()) {
                    self.pending = false;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                // A broken stream is the watcher's to retry as it is.
                self.pending = false;
                Poll::Ready(Some(Err(error)))
            }
            None if self.pending => {
                self.expired = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(EXPIRED)))))
            }
            None => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    async fn read<B>(body: ExpireIfEmpty<B>) -> String
    where
        B: HttpBody<Data = Bytes> + Unpin,
        B::Error: std::fmt::Debug,
    {
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn an_empty_watch_becomes_a_410_that_parses_as_a_watch_event() {
        let body = read(ExpireIfEmpty::new(
            Empty::<Bytes>::new(),
            true,
            http::StatusCode::OK,
        ))
        .await;
        let event: kube::core::WatchEvent<k8s_openapi::api::core::v1::ConfigMap> =
            serde_json::from_str(body.trim_end()).unwrap();
        let kube::core::WatchEvent::Error(status) = event else {
            panic!("not an ERROR event: {body}");
        };
        assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    }

    #[tokio::test]
    async fn a_watch_that_delivered_anything_ends_as_it_is() {
        let event = r#"{"type":"BOOKMARK","object":{}}"#;
        let body = ExpireIfEmpty::new(Full::new(Bytes::from(event)), true, http::StatusCode::OK);
        assert_eq!(read(body).await, event);
    }

    #[tokio::test]
    async fn other_responses_pass_through_untouched() {
        for (watch, status) in [
            (false, http::StatusCode::OK),
            (true, http::StatusCode::FORBIDDEN),
        ] {
            let body = ExpireIfEmpty::new(Empty::<Bytes>::new(), watch, status);
            assert_eq!(read(body).await, "", "watch {watch}, {status}");
        }
    }

    #[test]
    fn only_watch_requests_are_watches() {
        let watch = "/api/v1/configmaps?allowWatchBookmarks=true&watch=true&resourceVersion=5";
        assert!(is_watch(&watch.parse().unwrap()));
        assert!(!is_watch(&"/api/v1/configmaps?limit=500".parse().unwrap()));
        assert!(!is_watch(
            &"/api/v1/configmaps?watch=false".parse().unwrap()
        ));
    }
}
