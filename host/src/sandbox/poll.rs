//! `poll_oneoff` (what `std::thread::sleep` becomes on WASI preview 1), replacing
//! wasmtime-wasi's: a guest blocked in the host runs no wasm, so the epoch deadline alone
//! cannot stop it, and a sleeping guest would hold its worker past its timeout and past a
//! cancel. This one sleeps in short slices, checking the attempt's deadline and the run's
//! cancel flag between them.
//!
//! Sandboxed guests have no files or sockets, so the only descriptors they can poll are stdin
//! (always at end of file), stdout and stderr (always writable); those report ready at once.

use super::{Ctx, Stop};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::{Caller, Extern};

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: u16 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOTSUP: i32 = 58;
const TAG_CLOCK: u8 = 0;
const CLOCK_REALTIME: u32 = 0;
const FLAG_ABSTIME: u16 = 1;
const EVENT_FD_READWRITE_HANGUP: u16 = 1;
/// Longest a guest sleeps between checks of its deadline and its run's cancel flag.
const SLICE: Duration = Duration::from_millis(5);

struct Event {
    userdata: u64,
    error: u16,
    kind: u8,
    hangup: bool,
}

/// The linker function: `poll_oneoff(in, out, nsubscriptions, nevents_out) -> errno`.
pub(super) fn poll_oneoff(
    mut caller: Caller<'_, Ctx>,
    subs_ptr: i32,
    events_ptr: i32,
    nsubs: i32,
    nevents_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Ok(ERRNO_INVAL);
    };
    let n = nsubs as u32 as usize;
    if n == 0 {
        return Ok(ERRNO_INVAL);
    }
    // The count comes from the guest: check it against the guest's memory before allocating
    // anything of that size.
    let start = subs_ptr as u32 as usize;
    let fits = n
        .checked_mul(SUBSCRIPTION_SIZE)
        .and_then(|len| start.checked_add(len))
        .is_some_and(|end| end <= memory.data_size(&caller));
    if !fits {
        return Ok(ERRNO_FAULT);
    }
    let mut subs = vec![0u8; n * SUBSCRIPTION_SIZE];
    if memory.read(&caller, start, &mut subs).is_err() {
        return Ok(ERRNO_FAULT);
    }
    let mut ready = Vec::new();
    let mut clocks: Vec<(u64, Duration)> = Vec::new();
    for sub in subs.chunks_exact(SUBSCRIPTION_SIZE) {
        let userdata = u64::from_le_bytes(sub[0..8].try_into().expect("8 bytes"));
        match sub[8] {
            TAG_CLOCK => {
                let id = u32::from_le_bytes(sub[16..20].try_into().expect("4 bytes"));
                let timeout = u64::from_le_bytes(sub[24..32].try_into().expect("8 bytes"));
                let flags = u16::from_le_bytes(sub[40..42].try_into().expect("2 bytes"));
                // Relative waits on any clock (CPU-time clocks included) are wall-clock waits.
                let wait = if flags & FLAG_ABSTIME == 0 {
                    Duration::from_nanos(timeout)
                } else if id == CLOCK_REALTIME {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    Duration::from_nanos(timeout).saturating_sub(now)
                } else {
                    // An absolute monotonic time needs the guest's monotonic origin, which
                    // only wasmtime-wasi's clock knows; no Rust std API produces it.
                    return Ok(ERRNO_NOTSUP);
                };
                clocks.push((userdata, wait));
            }
            kind @ (1 | 2) => {
                let fd = u32::from_le_bytes(sub[16..20].try_into().expect("4 bytes"));
                let open = matches!((kind, fd), (1, 0) | (2, 1) | (2, 2));
                ready.push(Event {
                    userdata,
                    error: if open { 0 } else { ERRNO_BADF },
                    kind,
                    hangup: kind == 1 && open,
                });
            }
            _ => return Ok(ERRNO_INVAL),
        }
    }
    if ready.is_empty() {
        // Only clocks: sleep until the earliest, in slices, and report every clock due by then.
        let wait = clocks
            .iter()
            .map(|c| c.1)
            .min()
            .expect("n > 0 and no descriptors");
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if now >= until {
                break;
            }
            let ctx = caller.data_mut();
            match ctx.stop_due(now) {
                Some(Stop::Cancelled) => wasmtime::bail!("cancelled while sleeping"),
                Some(Stop::Timeout) => wasmtime::bail!("timed out while sleeping"),
                None => {}
            }
            std::thread::sleep(
                SLICE
                    .min(until - now)
                    .min(ctx.deadline.saturating_duration_since(now)),
            );
        }
        ready = clocks
            .iter()
            .filter(|c| c.1 <= wait)
            .map(|c| Event {
                userdata: c.0,
                error: 0,
                kind: TAG_CLOCK,
                hangup: false,
            })
            .collect();
    }
    let mut out = vec![0u8; ready.len() * EVENT_SIZE];
    for (e, buf) in ready.iter().zip(out.chunks_exact_mut(EVENT_SIZE)) {
        buf[0..8].copy_from_slice(&e.userdata.to_le_bytes());
        buf[8..10].copy_from_slice(&e.error.to_le_bytes());
        buf[10] = e.kind;
        if e.hangup {
            buf[24..26].copy_from_slice(&EVENT_FD_READWRITE_HANGUP.to_le_bytes());
        }
    }
    if memory
        .write(&mut caller, events_ptr as u32 as usize, &out)
        .is_err()
        || memory
            .write(
                &mut caller,
                nevents_ptr as u32 as usize,
                &(ready.len() as u32).to_le_bytes(),
            )
            .is_err()
    {
        return Ok(ERRNO_FAULT);
    }
    Ok(ERRNO_SUCCESS)
}
