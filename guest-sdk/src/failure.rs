//! [`WorkflowError`]: what a workflow's failure handler receives
//! (`#[workflow(on_failure = clean_up)]`).

use crate::types::SfType;
use sandflow_contract::failure_handler::error_type;
use sandflow_contract::{Type, Value};

/// The error a failure handler receives as its input `err`, beside the workflow's inputs:
///
/// ```
/// use sandflow::{task, WorkflowError};
/// #[task]
/// pub fn clean_up(name: String, err: WorkflowError) {
///     eprintln!("{name} failed at {}: {} ({})", err.failed_node, err.message, err.kind);
/// }
///
/// fn main() {}
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowError {
    pub message: String,
    /// The path of the node that failed, from the run's root (`wf1/t1`).
    pub failed_node: String,
    /// `"user"` (the task's own failure: a panic, an error it returned, a limit it exceeded)
    /// or `"system"` (the host's).
    pub kind: String,
}

impl SfType for WorkflowError {
    fn sf_type() -> Type {
        error_type()
    }

    fn into_value(self) -> Value {
        Value::Record(vec![
            Value::Str(self.message),
            Value::Str(self.failed_node),
            Value::Str(self.kind),
        ])
    }

    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Record(fields) if fields.len() == 3 => {
                let mut it = fields.into_iter();
                let mut next = |name: &str| {
                    it.next()
                        .ok_or_else(|| format!(".{name}: missing"))
                        .and_then(|v| String::from_value(v).map_err(|e| format!(".{name}: {e}")))
                };
                Ok(WorkflowError {
                    message: next("message")?,
                    failed_node: next("failed_node")?,
                    kind: next("kind")?,
                })
            }
            other => Err(format!(
                "expected {}, found {}",
                Self::sf_type(),
                other.kind()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_error_round_trips_through_its_value() {
        let e = WorkflowError {
            message: "boom".into(),
            failed_node: "wf1/t1".into(),
            kind: "user".into(),
        };
        assert_eq!(WorkflowError::from_value(e.clone().into_value()), Ok(e));
        assert!(WorkflowError::from_value(Value::Int(1)).is_err());
    }
}
