//! Captured stdout/stderr of one task execution, bounded: past the limit the middle is dropped
//! and replaced by a marker, so a flood costs a fixed amount of memory and both the start and
//! the end of the output (where a failure's cause usually is) are kept.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Clone)]
pub struct LogPipe(Arc<Mutex<Buf>>);

struct Buf {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    half: usize,
    dropped: u64,
}

impl LogPipe {
    /// Keeps at most `limit` bytes: the first and the last `limit / 2`.
    pub fn new(limit: usize) -> LogPipe {
        LogPipe(Arc::new(Mutex::new(Buf {
            head: Vec::new(),
            tail: VecDeque::new(),
            half: limit / 2,
            dropped: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Buf> {
        // Nothing panics while holding this lock; take the data either way.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self, mut bytes: &[u8]) {
        let mut b = self.lock();
        let room = b.half.saturating_sub(b.head.len());
        let (now, rest) = bytes.split_at(room.min(bytes.len()));
        b.head.extend_from_slice(now);
        bytes = rest;
        if bytes.is_empty() {
            return;
        }
        // Only the last `half` bytes of what is left can stay in the tail.
        let half = b.half;
        if bytes.len() > half {
            b.dropped += (bytes.len() - half) as u64;
            bytes = &bytes[bytes.len() - half..];
        }
        let overflow = (b.tail.len() + bytes.len()).saturating_sub(half);
        b.tail.drain(..overflow);
        b.dropped += overflow as u64;
        b.tail.extend(bytes);
    }

    /// What was captured, with a marker where bytes were dropped.
    pub fn contents(&self) -> Vec<u8> {
        let b = self.lock();
        let mut out = b.head.clone();
        if b.dropped > 0 {
            out.extend_from_slice(
                format!("\n[sandflow: {} bytes of output dropped here]\n", b.dropped).as_bytes(),
            );
        }
        out.extend(b.tail.iter());
        out
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LogPipe::write(self, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accepts: what does not fit is dropped, never refused.
        Ok(1 << 20)
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        LogPipe::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::LogPipe;

    #[test]
    fn keeps_head_and_tail_and_counts_what_it_drops() {
        let p = LogPipe::new(8);
        p.write(b"abcd");
        p.write(b"efghijkl");
        p.write(b"mn");
        let s = String::from_utf8(p.contents()).unwrap();
        assert!(
            s.starts_with("abcd\n[sandflow: 6 bytes of output dropped here]\n"),
            "{s}"
        );
        assert!(s.ends_with("klmn"), "{s}");
    }

    #[test]
    fn small_output_is_kept_whole() {
        let p = LogPipe::new(100);
        p.write(b"hello\n");
        assert_eq!(p.contents(), b"hello\n");
    }
}
