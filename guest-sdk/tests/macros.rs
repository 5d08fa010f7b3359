//! The SDK's macros reject what they cannot turn into an entity with a message on the
//! offending tokens; `tests/ui/*.stderr` pin those messages.

#[test]
fn macro_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
