//! Conditionals, as Flyte writes them: `conditional("c").if_(..).then(..).elif_(..).then(..)
//! .else_().then(..)` or `.else_().fail("..")`. The host evaluates the conditions itself
//! when the values they read are there, and runs the first branch whose condition holds.
//!
//! A branch is a closure that makes one call (of any entity, a map, or a nested
//! conditional): it runs apart from the graph being built, so its call becomes the branch and
//! not a node of the enclosing graph.

use crate::builder::{Promise, Src, NODES};
use crate::IntoBinding;
use sandflow_contract::{Branch, Case, Comparison, Condition, ConditionalSpec, NodeSpec};
use std::marker::PhantomData;

/// Starts a conditional named `name` (the name shows in node paths: `wf/name/double`).
///
/// ```
/// use sandflow::{conditional, task, workflow, Promise};
/// #[task]
/// pub fn double(n: f64) -> f64 { 2.0 * n }
/// #[task]
/// pub fn square(n: f64) -> f64 { n * n }
///
/// #[workflow]
/// pub fn shape(n: f64) -> f64 {
///     conditional("fractions")
///         .if_(n.ge(0.0) & n.lt(1.0))
///         .then(|| double::call(n))
///         .elif_(n.gt(1.0).and(n.lt(10.0)))
///         .then(|| square::call(n))
///         .else_()
///         .fail("The input must be between 0 and 10")
/// }
/// # fn main() {}
/// ```
pub fn conditional(name: &str) -> Conditional {
    Conditional {
        name: name.to_string(),
    }
}

/// A conditional with no case yet: give it one with [`Conditional::if_`].
pub struct Conditional {
    name: String,
}

impl Conditional {
    /// The first case: its branch runs when `cond` holds.
    pub fn if_<T>(self, cond: impl Into<Cond>) -> When<T> {
        When {
            cases: Cases {
                name: self.name,
                cases: Vec::new(),
                _t: PhantomData,
            },
            when: cond.into().0,
        }
    }
}

/// A case waiting for its branch: [`When::then`] or [`When::fail`].
pub struct When<T> {
    cases: Cases<T>,
    when: Condition,
}

impl<T> When<T> {
    /// The branch: `branch` makes one call (a task, workflow, dynamic, launch plan, map or a
    /// nested conditional) whose promise is the conditional's output when this case holds.
    #[track_caller]
    pub fn then(mut self, branch: impl FnOnce() -> Promise<T>) -> Cases<T> {
        let then = record_branch(&self.cases.name, branch);
        self.cases.cases.push(Case {
            when: self.when,
            then,
        });
        self.cases
    }

    /// Fails the conditional with `message` when this case holds.
    pub fn fail(mut self, message: &str) -> Cases<T> {
        self.cases.cases.push(Case {
            when: self.when,
            then: Branch::Fail(message.to_string()),
        });
        self.cases
    }
}

/// A conditional with at least one case: add one ([`Cases::elif_`]), or finish it with
/// [`Cases::else_`] (or [`Cases::end`] for a conditional without output).
pub struct Cases<T> {
    name: String,
    cases: Vec<Case>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Cases<T> {
    /// Another case, tried when the earlier ones do not hold.
    pub fn elif_(self, cond: impl Into<Cond>) -> When<T> {
        When {
            cases: self,
            when: cond.into().0,
        }
    }

    /// What runs when no case holds.
    pub fn else_(self) -> Else<T> {
        Else { cases: self }
    }

    fn finish(self, otherwise: Option<Branch>) -> Promise<T> {
        let node = NodeSpec {
            entity: self.name,
            inputs: Vec::new(),
            map: None,
            after: Vec::new(),
            conditional: Some(Box::new(ConditionalSpec {
                cases: self.cases,
                otherwise,
            })),
        };
        let index = NODES.with(|nodes| {
            let mut nodes = nodes.borrow_mut();
            let Some(nodes) = nodes.as_mut() else {
                panic!(
                    "conditional `{}` builds a graph node and works only inside a #[workflow] \
                     or #[dynamic] body",
                    node.entity
                );
            };
            nodes.push(node);
            nodes.len() - 1
        });
        Promise {
            src: Src::Node(index as u32),
            _t: PhantomData,
        }
    }
}

impl Cases<()> {
    /// Finishes a conditional without output: when no case holds, nothing runs.
    pub fn end(self) -> Promise<()> {
        self.finish(None)
    }
}

/// The branch that runs when no case holds: [`Else::then`] or [`Else::fail`].
pub struct Else<T> {
    cases: Cases<T>,
}

impl<T> Else<T> {
    /// Runs `branch`'s one call when no case holds; returns the conditional's output.
    #[track_caller]
    pub fn then(self, branch: impl FnOnce() -> Promise<T>) -> Promise<T> {
        let b = record_branch(&self.cases.name, branch);
        self.cases.finish(Some(b))
    }

    /// Fails the conditional with `message` when no case holds; returns its output.
    pub fn fail(self, message: &str) -> Promise<T> {
        self.cases.finish(Some(Branch::Fail(message.to_string())))
    }
}

/// Runs `branch` with a graph of its own and returns the one call it made.
#[track_caller]
fn record_branch<T>(name: &str, branch: impl FnOnce() -> Promise<T>) -> Branch {
    let outer = NODES.with(|n| n.borrow_mut().replace(Vec::new()));
    if outer.is_none() {
        NODES.with(|n| *n.borrow_mut() = None);
        panic!(
            "conditional `{name}` builds a graph node and works only inside a #[workflow] or \
             #[dynamic] body"
        );
    }
    // Put the enclosing graph back even if the branch panics, so the message is the
    // branch's own.
    struct Restore(Option<Option<Vec<NodeSpec>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                NODES.with(|n| *n.borrow_mut() = outer);
            }
        }
    }
    let restore = Restore(Some(outer));
    let promise = branch();
    let made = NODES.with(|n| n.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    match (made.len(), promise.src) {
        (1, Src::Node(0)) => Branch::Node(made.into_iter().next().expect("one call")),
        (0, _) => panic!(
            "a branch of conditional `{name}` makes no call: it must call an entity (a task, \
             workflow, dynamic, launch plan, map or conditional) and return its promise"
        ),
        (1, _) => {
            panic!("a branch of conditional `{name}` must return the promise of the call it makes")
        }
        (n, _) => panic!(
            "a branch of conditional `{name}` makes {n} calls ({}); a branch is one call: make \
             the others before the conditional and pass their promises in",
            made.iter()
                .map(|n| n.entity.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A condition the host evaluates: a comparison of promises and constants of primitive
/// types, a test of a boolean or an optional, or `and`/`or`/`not` of conditions (also
/// written `&`, `|`, `!`).
///
/// ```
/// use sandflow::{conditional, task, workflow};
/// #[task]
/// pub fn heads() -> bool { true }
/// #[task]
/// pub fn pick(n: i64) -> i64 { n }
///
/// #[workflow]
/// pub fn choose(n: i64, label: String) -> i64 {
///     let coin = heads::call();
///     conditional("which")
///         .if_(coin.is_true() & !n.eq(0))
///         .then(|| pick::call(n))
///         .elif_(label.eq("zero".to_string()).or(n.lt(0)))
///         .then(|| pick::call(0))
///         .else_()
///         .then(|| pick::call(1))
/// }
/// # fn main() {}
/// ```
#[derive(Clone, Debug)]
pub struct Cond(Condition);

impl Cond {
    /// Holds when both hold (the second is not evaluated when the first does not).
    pub fn and(self, other: impl Into<Cond>) -> Cond {
        Cond(Condition::And(Box::new(self.0), Box::new(other.into().0)))
    }

    /// Holds when either holds (the second is not evaluated when the first does).
    pub fn or(self, other: impl Into<Cond>) -> Cond {
        Cond(Condition::Or(Box::new(self.0), Box::new(other.into().0)))
    }

    /// Holds when `self` does not.
    #[allow(clippy::should_implement_trait)] // `!` is implemented too; this is Flyte's spelling
    pub fn not(self) -> Cond {
        Cond(Condition::Not(Box::new(self.0)))
    }
}

impl std::ops::BitAnd for Cond {
    type Output = Cond;
    fn bitand(self, other: Cond) -> Cond {
        self.and(other)
    }
}

impl std::ops::BitOr for Cond {
    type Output = Cond;
    fn bitor(self, other: Cond) -> Cond {
        self.or(other)
    }
}

impl std::ops::Not for Cond {
    type Output = Cond;
    fn not(self) -> Cond {
        Cond(Condition::Not(Box::new(self.0)))
    }
}

/// A boolean promise is a condition that holds when it is true.
impl From<Promise<bool>> for Cond {
    fn from(p: Promise<bool>) -> Cond {
        p.is_true()
    }
}

/// The types a condition compares: `i64`, `f64`, `bool` (only `eq`/`ne`) and `String`.
#[diagnostic::on_unimplemented(
    message = "a condition cannot compare a `{Self}`",
    label = "a promise of `{Self}`",
    note = "conditions compare promises of i64, f64, bool or String; test an Option with is_some()/is_none()"
)]
pub trait Primitive: crate::SfType {}
impl Primitive for i64 {}
impl Primitive for f64 {}
impl Primitive for bool {}
impl Primitive for String {}

macro_rules! comparisons {
    ($($name:ident => $op:ident, $doc:literal;)*) => {
        impl<T> Promise<T> {
            $(
                #[doc = $doc]
                #[allow(clippy::should_implement_trait)] // a promise has no value to compare yet
                pub fn $name(self, other: impl IntoBinding<T>) -> Cond
                where
                    T: Primitive,
                {
                    Cond(Condition::Compare(
                        self.src.binding(),
                        Comparison::$op,
                        other.into_binding(),
                    ))
                }
            )*
        }
    };
}

comparisons! {
    eq => Eq, "Holds when the value equals `other` (a constant or a promise of the same type).";
    ne => Ne, "Holds when the value differs from `other`.";
    lt => Lt, "Holds when the value is less than `other`.";
    le => Le, "Holds when the value is at most `other`.";
    gt => Gt, "Holds when the value is greater than `other`.";
    ge => Ge, "Holds when the value is at least `other`.";
}

impl Promise<bool> {
    /// Holds when the boolean is true (Flyte's `is_true()`).
    pub fn is_true(self) -> Cond {
        Cond(Condition::IsTrue(self.src.binding()))
    }

    /// Holds when the boolean is false (Flyte's `is_false()`).
    pub fn is_false(self) -> Cond {
        Cond(Condition::Not(Box::new(Condition::IsTrue(
            self.src.binding(),
        ))))
    }
}

impl<T> Promise<Option<T>> {
    /// Holds when the optional has a value.
    pub fn is_some(self) -> Cond {
        Cond(Condition::IsSome(self.src.binding()))
    }

    /// Holds when the optional has none (Flyte's `is_none()`).
    pub fn is_none(self) -> Cond {
        Cond(Condition::IsNone(self.src.binding()))
    }
}
