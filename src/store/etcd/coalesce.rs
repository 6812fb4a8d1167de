//! A connection wrapper that merges the writes of one turn of the runtime into one socket
//! write, so watch fan-out leaves as a few large packets instead of one packet per watch.
//!
//! Why: hyper's HTTP/2 connection task writes and flushes every time it is polled, and it
//! is polled once per stream that produced data (a stream's task wakes it, tokio runs it
//! next). A put seen by 100 watches on one connection then left as ~30 TCP packets, where
//! etcd (whose gRPC writer flushes only once its queue is empty) sent ~11; each packet costs
//! both sides a system call and a wake-up. Here a flush with data pending is deferred once:
//! the connection task wakes itself and returns `Pending`, which puts it at the back of the
//! run queue; the other ready streams add their frames meanwhile, and the next poll writes
//! everything in one `write`. Only a busy connection defers (its previous flush was less
//! than [`BUSY_WINDOW`] ago): a yield makes tokio wake a parked worker (a futex call), which
//! on a quiet connection (one client's puts, a flush every few hundred µs) only added
//! latency (-15 % for single-client puts when every flush deferred).
//!
//! Owns nothing but its buffer; bounded by [`MAX_BUFFER`] (beyond it, writes wait for the
//! socket like an unwrapped stream).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes beyond which a write first drains the buffer to the socket.
const MAX_BUFFER: usize = 256 * 1024;
/// A flush this soon after the previous one means other streams are producing too.
const BUSY_WINDOW: Duration = Duration::from_micros(100);

/// An I/O stream whose flushes are merged per runtime turn (see the module doc).
pub struct Coalesced<T> {
    io: T,
    buf: Vec<u8>,
    /// How much of `buf` has reached the socket.
    written: usize,
    /// A flush was deferred once already; the next one writes.
    deferred: bool,
    /// When data last went to the socket.
    last_flush: Option<Instant>,
    busy_window: Duration,
}

impl<T> Coalesced<T> {
    pub fn new(io: T) -> Self {
        Coalesced {
            io,
            buf: Vec::new(),
            written: 0,
            deferred: false,
            last_flush: None,
            busy_window: BUSY_WINDOW,
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesced<T> {
    /// Writes the buffer out (as far as the socket takes it before `Pending`).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= MAX_BUFFER {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() {
            this.deferred = false;
            return Pin::new(&mut this.io).poll_flush(cx);
        }
        let now = Instant::now();
        let busy = this
            .last_flush
            .is_some_and(|t| now.duration_since(t) < this.busy_window);
        if busy && !this.deferred {
            // A task that wakes itself while running is rescheduled behind the tasks
            // already queued (tokio treats it as a yield), so their frames join this write.
            this.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.deferred = false;
        this.last_flush = Some(now);
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Coalesced<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_reach_the_peer_in_order_after_flush_and_shutdown() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = Coalesced::new(a);
        // More than the duplex's capacity: the drain must wait for the reader.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        for chunk in data.chunks(7_000) {
            w.write_all(chunk).await.unwrap();
        }
        w.flush().await.unwrap();
        w.write_all(b"tail").await.unwrap();
        w.shutdown().await.unwrap();
        let mut want = expected;
        want.extend_from_slice(b"tail");
        assert_eq!(reader.await.unwrap(), want);
    }

    #[tokio::test]
    async fn a_flush_right_after_another_is_deferred_once_then_writes() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut w = Coalesced::new(a);
        // Slow test machines must not make the second flush look like a quiet connection.
        w.busy_window = Duration::from_secs(3600);
        // A first flush goes out at once (the connection is not busy yet)...
        w.write_all(b"first").await.unwrap();
        w.flush().await.unwrap();
        let mut first = [0u8; 5];
        b.read_exact(&mut first).await.unwrap();
        // ...one right after it is deferred once.
        w.write_all(b"hello").await.unwrap();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut w).poll_flush(&mut cx).is_pending());
        // Nothing reached the peer yet.
        let mut one = [0u8; 5];
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), b.read_exact(&mut one))
                .await
                .is_err()
        );
        assert!(matches!(
            Pin::new(&mut w).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        b.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"hello");
    }
}
