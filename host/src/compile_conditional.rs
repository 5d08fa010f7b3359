//! The compiler's checks of conditional nodes: each condition compares or tests values of
//! primitive types of one type, every branch returns one type, and each call branch is
//! checked as any node of the enclosing graph (its bindings read that graph).

use crate::compile::{check_node, node_output_type, CompileError, Entities};
use sandflow_contract::{
    Binding, Branch, Condition, ConditionalSpec, NodeSpec, Param, Type, Value,
};

/// Checks conditional node `i` (`node`, whose conditional is `c`) of a graph whose nodes'
/// output types are `types`.
pub(crate) fn check_conditional(
    decl: &impl Entities,
    types: &[Option<Type>],
    i: usize,
    node: &NodeSpec,
    c: &ConditionalSpec,
    inputs: Option<&[Param]>,
    at: &dyn Fn() -> String,
) -> Result<(), CompileError> {
    let fail = |m: String| CompileError {
        location: at(),
        message: m,
    };
    if !node.inputs.is_empty() || node.map.is_some() {
        return Err(fail(
            "a conditional has no inputs or map of its own (its branches do)".into(),
        ));
    }
    for &j in &node.after {
        if j as usize >= types.len() || j as usize == i {
            return Err(fail(format!(
                "waits for node n{j}, which is itself or not one of the graph's {} nodes",
                types.len()
            )));
        }
    }
    if c.cases.is_empty() {
        return Err(fail("has no case: start it with if_(..)".into()));
    }
    for (k, case) in c.cases.iter().enumerate() {
        check_condition(types, i, &case.when, inputs)
            .map_err(|m| fail(format!("condition of case {}: {m}", k + 1)))?;
    }
    // The branches' common output type: the first call branch's; fail branches have any.
    let mut first: Option<(usize, Option<Type>)> = None;
    for (k, b) in c.branches().enumerate() {
        let Branch::Node(n) = b else { continue };
        let what = branch_name(c, k, n);
        let at_branch = || format!("{}, {what}", at());
        match &n.conditional {
            Some(inner) => check_conditional(decl, types, i, n, inner, inputs, &at_branch)?,
            None => {
                let Some(target) = decl.index(&n.entity) else {
                    return Err(CompileError {
                        location: at_branch(),
                        message: format!(
                            "unknown entity `{}`; the module has: {}",
                            n.entity,
                            decl.names()
                        ),
                    });
                };
                check_node(decl, types, i, n, target, inputs, &at_branch)?;
            }
        }
        let ty = node_output_type(decl, n);
        match &first {
            None => first = Some((k, ty)),
            Some((k0, t0)) if *t0 != ty => {
                return Err(fail(format!(
                    "{what} returns {}, but {} returns {}: all branches of a conditional \
                     return one type",
                    show(&ty),
                    branch_name(c, *k0, first_node(c, *k0)),
                    show(t0)
                )))
            }
            Some(_) => {}
        }
    }
    if c.otherwise.is_none() {
        if let Some((_, Some(t))) = &first {
            return Err(fail(format!(
                "has no else_() branch, but returns {t}: when no case holds it would have no \
                 value; add else_().then(..) or else_().fail(..)"
            )));
        }
    }
    Ok(())
}

fn first_node(c: &ConditionalSpec, k: usize) -> &NodeSpec {
    match c.branches().nth(k) {
        Some(Branch::Node(n)) => n,
        _ => unreachable!("branch {k} was found to be a call"),
    }
}

/// `case 2 (calls `square`)`, `the else branch (calls `double`)`.
fn branch_name(c: &ConditionalSpec, k: usize, n: &NodeSpec) -> String {
    let what = if n.conditional.is_some() {
        format!("conditional `{}`", n.entity)
    } else {
        format!("calls `{}`", n.entity)
    };
    if k < c.cases.len() {
        format!("case {} ({what})", k + 1)
    } else {
        format!("the else branch ({what})")
    }
}

fn show(t: &Option<Type>) -> String {
    t.as_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|| "nothing".into())
}

/// Checks a condition of conditional node `i`.
fn check_condition(
    types: &[Option<Type>],
    i: usize,
    cond: &Condition,
    inputs: Option<&[Param]>,
) -> Result<(), String> {
    // Explicit stack: conditions nest as deep as the guest made them.
    let mut stack = vec![cond];
    while let Some(c) = stack.pop() {
        match c {
            Condition::Compare(a, op, b) => {
                let (ta, da) = operand(types, i, a, inputs)?;
                let (tb, db) = operand(types, i, b, inputs)?;
                for (t, d) in [(&ta, &da), (&tb, &db)] {
                    if !matches!(t, Type::Int | Type::Float | Type::Str | Type::Bool) {
                        return Err(format!(
                            "`{}` compares {d}, of type {t}; a comparison takes an int, float, \
                             str or bool",
                            op.symbol()
                        ));
                    }
                }
                if ta != tb {
                    return Err(format!(
                        "`{}` compares {da} ({ta}) with {db} ({tb}); both sides must have one type",
                        op.symbol()
                    ));
                }
                if ta == Type::Bool && !op.is_equality() {
                    return Err(format!(
                        "`{}` orders booleans ({da}); a boolean takes only == and !=",
                        op.symbol()
                    ));
                }
            }
            Condition::IsTrue(b) => {
                let (t, d) = operand(types, i, b, inputs)?;
                if t != Type::Bool {
                    return Err(format!("is_true tests {d}, of type {t}; expected bool"));
                }
            }
            Condition::IsSome(b) | Condition::IsNone(b) => {
                let (t, d) = operand(types, i, b, inputs)?;
                if !matches!(t, Type::Optional(_)) {
                    let which = if matches!(c, Condition::IsSome(_)) {
                        "is_some"
                    } else {
                        "is_none"
                    };
                    return Err(format!(
                        "{which} tests {d}, of type {t}; expected an optional"
                    ));
                }
            }
            Condition::And(a, b) | Condition::Or(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Condition::Not(a) => stack.push(a),
        }
    }
    Ok(())
}

/// An operand's type and how messages name it.
fn operand(
    types: &[Option<Type>],
    i: usize,
    b: &Binding,
    inputs: Option<&[Param]>,
) -> Result<(Type, String), String> {
    match b {
        Binding::Literal(v) => {
            let t = match v {
                Value::Int(_) => Type::Int,
                Value::Float(_) => Type::Float,
                Value::Bool(_) => Type::Bool,
                Value::Str(_) => Type::Str,
                other => {
                    return Err(format!(
                        "a constant operand is an int, float, str or bool, found a {}",
                        other.kind()
                    ))
                }
            };
            Ok((t, format!("the constant {}", literal(v))))
        }
        Binding::Input(name) => {
            let Some(inputs) = inputs else {
                return Err(format!(
                    "reads workflow input `{name}`, but a dynamic's graph has no inputs"
                ));
            };
            let p = inputs
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| format!("reads unknown workflow input `{name}`"))?;
            Ok((p.ty.clone(), format!("workflow input `{name}`")))
        }
        Binding::Node(j) => {
            let j = *j as usize;
            if j >= types.len() {
                return Err(format!(
                    "reads node n{j}, but the graph has {} nodes",
                    types.len()
                ));
            }
            if j == i {
                return Err("reads its own output".into());
            }
            match &types[j] {
                None => Err(format!("reads node n{j}, which returns nothing")),
                Some(t) => Ok((t.clone(), format!("the output of node n{j}"))),
            }
        }
        // A part of a node's output or of an input (`res.slope()`), typed as any input
        // reading it is.
        Binding::Field { .. } | Binding::Index { .. } | Binding::Key { .. } => {
            let t = crate::compile::binding_type(types, i, b, inputs)?;
            Ok((t, crate::compile::place(b)))
        }
        Binding::List(_) | Binding::Map(_) | Binding::Record(_) => Err(
            "an operand is a constant, a workflow input, a node's output or a part of one, not \
             a list, map or record of promises"
                .into(),
        ),
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Int(x) => x.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Bool(x) => x.to_string(),
        Value::Str(x) => format!("{x:?}"),
        other => other.kind().to_string(),
    }
}

/// The entities graph nodes call, through conditionals' branches too: what a workflow
/// contains, for the recursion check.
pub(crate) fn called_entities(nodes: &[NodeSpec]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack: Vec<&NodeSpec> = nodes.iter().collect();
    while let Some(n) = stack.pop() {
        match &n.conditional {
            None => out.push(n.entity.as_str()),
            Some(c) => stack.extend(c.branches().filter_map(|b| match b {
                Branch::Node(n) => Some(n),
                Branch::Fail(_) => None,
            })),
        }
    }
    out
}
