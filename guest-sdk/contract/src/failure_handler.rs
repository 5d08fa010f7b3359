//! A workflow's failure handler (Flyte's `on_failure`): an entity the host runs once when the
//! workflow fails, with the workflow's inputs and an input [`ERROR_INPUT`] of type
//! [`error_type`] saying what failed.

use crate::value::{RecordType, Type};

/// The handler's input that receives the error.
pub const ERROR_INPUT: &str = "err";

/// The name of the error's record type.
pub const ERROR_TYPE_NAME: &str = "WorkflowError";

/// The error a handler receives: `message`, `failed_node` (the failed node's path, from the
/// run's root) and `kind` (`"user"`: the guest's own failure, `"system"`: the host's).
pub fn error_type() -> Type {
    Type::Record(RecordType {
        name: ERROR_TYPE_NAME.into(),
        fields: vec![
            ("message".into(), Type::Str),
            ("failed_node".into(), Type::Str),
            ("kind".into(), Type::Str),
        ],
    })
}
