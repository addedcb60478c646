//! What the kill scenarios share: a random kill point, and a wait for the moment to kill.

use std::time::Duration;

/// A kill point in `range`, different from run to run (the scenarios print it, so a failure
/// can be replayed by reading the log).
pub fn random_in(range: std::ops::RangeInclusive<usize>) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos()) as usize;
    range.start() + nanos % (range.end() - range.start() + 1)
}

/// Polls `count` every 100 ms until it reaches `at`; panics naming `what` after `within`.
pub async fn until_count<F, Fut>(what: &str, at: usize, within: Duration, mut count: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = count().await;
        if now >= at {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {now} {what} after {within:?}, waiting for {at}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
