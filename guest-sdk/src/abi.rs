//! The guest side of the ABI (see `sandflow_contract::abi` for the contract): the SDK's own
//! exports, and the two functions every entity's generated exports call.

use crate::wire::{Output, Typed};
use crate::SfType;
use sandflow_contract::{abi, codec, CallResult, EntityDecl};
use std::cell::{Cell, RefCell};

thread_local! {
    static PANIC_MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string());
            let full = match info.location() {
                Some(l) => format!("{msg} (at {}:{})", l.file(), l.line()),
                None => msg,
            };
            eprintln!("panicked: {full}");
            PANIC_MESSAGE.with(|m| *m.borrow_mut() = full);
        }));
    });
}

/// Hands `bytes` to the host. The instance is thrown away after the call, so the buffer is
/// never freed.
fn leak(bytes: Vec<u8>) -> i64 {
    let len = bytes.len() as u32;
    let ptr = bytes.leak().as_ptr() as usize as u32;
    abi::pack(ptr, len)
}

/// Encodes `r` for the host: the body of every call export's answer but a task's output.
pub fn encode_call_result(r: &CallResult) -> i64 {
    match codec::encode(r) {
        Ok(b) => leak(b),
        Err(e) => leak(codec::encode(&CallResult::Error(e.to_string())).unwrap_or_default()),
    }
}

/// Encodes a task's output `v` as `CallResult::Output(Some(v))`, writing `v` straight from
/// its Rust form (see `wire.rs`): the same bytes as through `Value`, without building it.
pub fn encode_output<T: SfType>(v: T) -> i64 {
    match codec::encode(&Output(Cell::new(Some(v)))) {
        Ok(b) => leak(b),
        Err(e) => encode_call_result(&CallResult::Error(e.to_string())),
    }
}

/// Body of `sandflow:decl:<name>`.
pub fn decl_entity(decl: fn() -> EntityDecl) -> i64 {
    install_panic_hook();
    match codec::encode(&decl()) {
        Ok(b) => leak(b),
        Err(_) => 0,
    }
}

/// Body of `sandflow:call:<name>`: hands `f` the encoded inputs the host wrote at `ptr`.
///
/// # Safety
/// `ptr..ptr+len` must be a buffer the host filled after `sandflow_alloc(len)` returned `ptr`.
pub unsafe fn call_entity(ptr: u32, len: u32, f: fn(&[u8]) -> i64) -> i64 {
    install_panic_hook();
    // SAFETY: the host wrote `len` bytes at `ptr`, which `sandflow_alloc` handed out.
    let input = unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    f(input)
}

/// A call's encoded inputs (`Vec<Value>` in interface order), read one by one into the
/// types of the entity's parameters.
pub struct Args<'a> {
    reader: codec::SeqReader<'a>,
}

impl<'a> Args<'a> {
    /// Starts reading `bytes`, which must hold exactly as many inputs as `entity` has `params`.
    pub fn new(bytes: &'a [u8], entity: &str, params: usize) -> Result<Args<'a>, String> {
        let reader = codec::SeqReader::new(bytes)
            .map_err(|e| format!("could not read the inputs the host sent: {e}"))?;
        if reader.len() != params {
            return Err(format!(
                "{entity} takes {params} inputs, the host sent {}",
                reader.len()
            ));
        }
        Ok(Args { reader })
    }

    /// Reads the next input, the parameter `name`, as a `T`.
    pub fn next<T: SfType>(&mut self, name: &str) -> Result<T, String> {
        match self.reader.next_seed(Typed::<T>::new()) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(format!("input `{name}`: {e}")),
            None => Err(format!("input `{name}`: missing")),
        }
    }

    /// Checks that nothing follows the last input.
    pub fn finish(self) -> Result<(), String> {
        self.reader
            .finish()
            .map_err(|e| format!("could not read the inputs the host sent: {e}"))
    }
}

#[cfg(target_arch = "wasm32")]
mod exports {
    use super::*;

    #[export_name = "sandflow_abi_version"]
    extern "C" fn abi_version() -> i32 {
        abi::ABI_VERSION
    }

    #[export_name = "sandflow_alloc"]
    extern "C" fn alloc(len: i32) -> i32 {
        // Uninitialized is fine: the host writes all `len` bytes before the call reads them.
        let mut buf = Vec::<u8>::with_capacity(len.max(0) as usize);
        let ptr = buf.as_mut_ptr() as usize as i32;
        std::mem::forget(buf);
        ptr
    }

    #[export_name = "sandflow_panic_message"]
    extern "C" fn panic_message() -> i64 {
        leak(PANIC_MESSAGE.with(|m| m.borrow().as_bytes().to_vec()))
    }
}
