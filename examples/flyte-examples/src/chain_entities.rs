//! Flyte's `advanced_composition/chain_entities.py`: tasks, workflows and launch plans that
//! pass no value, run in an order given with `.after(..)` (Flyte's `a >> b`).

use sandflow::{launch_plan, task, workflow};

#[task]
pub fn t2() {
    println!("Running t2");
}

#[task]
pub fn t1() {
    println!("Running t1");
}

#[task]
pub fn t0() {
    println!("Running t0");
}

// Chaining tasks
#[workflow]
pub fn chain_tasks_wf() {
    let t2_promise = t2::call();
    let t1_promise = t1::call();
    let t0_promise = t0::call();

    t1_promise.after(&t0_promise);
    t2_promise.after(&t1_promise);
}

// Chaining subworkflows
#[workflow]
pub fn sub_workflow_1() {
    t1::call();
}

#[workflow]
pub fn sub_workflow_0() {
    t0::call();
}

#[workflow]
pub fn chain_workflows_wf() {
    let sub_wf1 = sub_workflow_1::call();
    let sub_wf0 = sub_workflow_0::call();

    sub_wf1.after(&sub_wf0);
}

// Chaining launch plans
#[launch_plan(sub_workflow_1)]
pub fn lp1();

#[launch_plan(sub_workflow_0)]
pub fn lp0();

#[workflow]
pub fn chain_launchplans_wf() {
    let lp1 = lp1::call();
    let lp0 = lp0::call();

    lp1.after(&lp0);
}
