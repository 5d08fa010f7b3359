//! Flyte's `development_lifecycle/failure_node.py`: a failure handler (`on_failure`) that
//! cleans up when a workflow fails, as a task (`clean_up`, which also takes the error, as
//! Flyte's `err: Optional[FlyteError]`) and as a workflow (`clean_up_wf`).

use sandflow::{task, workflow, WorkflowError};

#[task]
pub fn create_cluster(name: String) {
    println!("Creating cluster: {name}");
}

// Create a task that will fail during execution
#[task]
pub fn t1(a: i64, b: String) -> Result<(), String> {
    println!("{a} {b}");
    Err("Fail!".into())
}

#[task]
pub fn delete_cluster(name: String) {
    println!("Deleting cluster {name}");
}

// Create a task that will be executed if any of the tasks in the workflow fail
#[task]
pub fn clean_up(name: String, err: Option<WorkflowError>) {
    match err {
        Some(err) => println!("Cleaning up cluster {name} due to {}", err.message),
        None => println!("Cleaning up cluster {name} due to None"),
    }
}

// Specify the `on_failure` to a cleanup task.
// The input of `clean_up` should be the exact same as the input of the workflow.
#[workflow(on_failure = clean_up)]
pub fn subwf(name: String) {
    let c = create_cluster::call(name.clone());
    let t = t1::call(1, "2".to_string());
    let d = delete_cluster::call(name);
    t.after(&c);
    d.after(&t);
}

// With `run_all` (Flyte's FAIL_AFTER_EXECUTABLE_NODES_COMPLETE) `wf1`'s other nodes run even if
// the subworkflow fails: both fail, and `clean_up` runs twice.
#[workflow(on_failure = clean_up, failure_policy = "run_all")]
pub fn wf1(#[default("my_cluster")] name: String) {
    let c = create_cluster::call(name.clone());
    subwf::call("another_cluster".to_string());
    let t = t1::call(1, "2".to_string());
    let d = delete_cluster::call(name);
    t.after(&c);
    d.after(&t);
}

#[workflow]
pub fn clean_up_wf(name: String) {
    clean_up::call(name, None);
}

// The `on_failure` handler may also be a workflow.
#[workflow(on_failure = clean_up_wf)]
pub fn wf2(#[default("my_cluster")] name: String) {
    let c = create_cluster::call(name.clone());
    let t = t1::call(1, "2".to_string());
    let d = delete_cluster::call(name);
    t.after(&c);
    d.after(&t);
}
