//! The guest side of the ABI (see `sandflow_contract::abi` for the contract): the SDK's own
//! exports, and the two functions every entity's generated exports call.

use sandflow_contract::{abi, codec, CallResult, EntityDecl, Value};
use std::cell::RefCell;

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

fn encode_result(r: &CallResult) -> i64 {
    match codec::encode(r) {
        Ok(b) => leak(b),
        Err(e) => leak(codec::encode(&CallResult::Error(e.to_string())).unwrap_or_default()),
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

/// Body of `sandflow:call:<name>`: decode the inputs the host wrote at `ptr`, run `f`.
///
/// # Safety
/// `ptr..ptr+len` must be a buffer the host filled after `sandflow_alloc(len)` returned `ptr`.
pub unsafe fn call_entity(ptr: u32, len: u32, f: fn(Vec<Value>) -> CallResult) -> i64 {
    install_panic_hook();
    // SAFETY: the host wrote `len` bytes at `ptr`, which `sandflow_alloc` handed out.
    let input = unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    let result = match codec::decode::<Vec<Value>>(input) {
        Ok(inputs) => f(inputs),
        Err(e) => CallResult::Error(format!("could not read the inputs the host sent: {e}")),
    };
    encode_result(&result)
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
