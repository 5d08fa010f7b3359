//! Building graphs from typed promises: what `foo::call(..)` does inside a workflow or a
//! dynamic. A workflow body runs once, when the host describes the module; a dynamic body runs
//! in its sandbox with real inputs. Either way the calls it makes are recorded as nodes.

use crate::types::SfType;
use sandflow_contract::{Binding, FailurePolicy, GraphSpec, MapSpec, NodeSpec};
use std::cell::RefCell;
use std::marker::PhantomData;

thread_local! {
    /// The nodes of the graph being built; `None` outside a workflow or dynamic body.
    pub(crate) static NODES: RefCell<Option<Vec<NodeSpec>>> = const { RefCell::new(None) };
}

/// The future output of a node, of type `T`. Pass it to other calls (it is `Copy`, so one
/// promise can feed many); it is not a value yet.
///
/// ```
/// use sandflow::{task, workflow, Promise};
/// #[task]
/// pub fn double(a: i64) -> i64 { a * 2 }
/// #[task]
/// pub fn add(a: i64, b: i64) -> i64 { a + b }
///
/// #[workflow]
/// pub fn twice_plus(a: i64) -> i64 {
///     let d: Promise<i64> = double::call(a);
///     add::call(d, d) // one promise, two inputs
/// }
/// # fn main() {}
/// ```
pub struct Promise<T> {
    pub(crate) src: Src,
    pub(crate) _t: PhantomData<fn() -> T>,
}

/// Where a promise's value will come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Src {
    Node(u32),
    Input(&'static str),
}

impl Src {
    pub(crate) fn binding(self) -> Binding {
        match self {
            Src::Node(i) => Binding::Node(i),
            Src::Input(name) => Binding::Input(name.to_string()),
        }
    }
}

impl<T> Promise<T> {
    /// Makes this promise's node wait until `other`'s node has succeeded, though no value
    /// passes between them (Flyte's `other >> self`); returns the same promise.
    ///
    /// ```
    /// use sandflow::{task, workflow};
    /// #[task]
    /// pub fn create_bucket(name: String) {}
    /// #[task]
    /// pub fn upload(name: String) -> i64 { 1 }
    ///
    /// #[workflow]
    /// pub fn publish(name: String) -> i64 {
    ///     let bucket = create_bucket::call(name);
    ///     upload::call(name).after(&bucket)
    /// }
    /// # fn main() {}
    /// ```
    ///
    /// Both promises must be calls of the graph being built: a workflow's input is there
    /// from the start, and waiting for it is a mistake this reports (as a panic, which the
    /// host shows when it describes the module or runs the dynamic).
    pub fn after<U>(self, other: &Promise<U>) -> Self {
        let (Src::Node(me), Src::Node(first)) = (self.src, other.src) else {
            panic!(
                "`.after(..)` orders two calls of the graph being built; {:?} waits for {:?}, \
                 and a workflow input cannot wait or be waited for",
                self.src, other.src
            );
        };
        NODES.with(|nodes| {
            let mut nodes = nodes.borrow_mut();
            let Some(node) = nodes.as_mut().and_then(|n| n.get_mut(me as usize)) else {
                panic!("`.after(..)` works only inside the #[workflow] or #[dynamic] body that made the promise");
            };
            // Repeats are harmless: the host counts each distinct node once.
            node.after.push(first);
        });
        self
    }
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Promise<T> {}

impl<T> std::fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Promise({:?})", self.src)
    }
}

/// Anything that can be bound to an input of type `T`: a value of `T`, a `Promise<T>`, or,
/// for list inputs, a `Vec` of promises of the items.
///
/// ```
/// use sandflow::{dynamic, task};
/// #[task]
/// pub fn inc(a: i64) -> i64 { a + 1 }
/// #[task]
/// pub fn sum(l: Vec<i64>) -> i64 { l.iter().sum() }
///
/// #[dynamic]
/// pub fn fan(n: i64) -> i64 {
///     // A literal, then a Vec of promises bound to a list input.
///     let parts: Vec<_> = (0..n).map(inc::call).collect();
///     sum::call(parts)
/// }
/// # fn main() {}
/// ```
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot be bound to an input of type `{T}`",
    label = "expected a `{T}` or a `Promise<{T}>` here",
    note = "an input of type `{T}` takes a value of that type, a `Promise<{T}>`, or, for a list, a `Vec` of promises of its items"
)]
pub trait IntoBinding<T> {
    fn into_binding(self) -> Binding;
}

impl<T: SfType> IntoBinding<T> for T {
    fn into_binding(self) -> Binding {
        Binding::Literal(self.into_value())
    }
}

impl<T> IntoBinding<T> for Promise<T> {
    fn into_binding(self) -> Binding {
        self.src.binding()
    }
}

impl<T> IntoBinding<T> for &Promise<T> {
    fn into_binding(self) -> Binding {
        self.src.binding()
    }
}

impl<T> IntoBinding<Vec<T>> for Vec<Promise<T>> {
    fn into_binding(self) -> Binding {
        Binding::List(self.into_iter().map(|p| p.src.binding()).collect())
    }
}

/// Records a call of `entity` in the graph being built. Called by `foo::call(..)`.
pub fn add_node<T>(entity: &str, inputs: Vec<(&str, Binding)>, map: Option<MapSpec>) -> Promise<T> {
    let index = NODES.with(|nodes| {
        let mut nodes = nodes.borrow_mut();
        let Some(nodes) = nodes.as_mut() else {
            panic!(
                "`{entity}::call` builds a graph node and works only inside a #[workflow] or \
                 #[dynamic] body; call `{entity}(..)` to run a task as plain Rust"
            );
        };
        nodes.push(NodeSpec {
            entity: entity.to_string(),
            inputs: inputs
                .into_iter()
                .map(|(n, b)| (n.to_string(), b))
                .collect(),
            map,
            after: Vec::new(),
            conditional: None,
        });
        nodes.len() - 1
    });
    Promise {
        src: Src::Node(index as u32),
        _t: PhantomData,
    }
}

/// Runs `body` with an empty graph and returns the graph it built.
pub fn build_graph(on_failure: FailurePolicy, body: impl FnOnce() -> Option<Binding>) -> GraphSpec {
    NODES.with(|n| *n.borrow_mut() = Some(Vec::new()));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            NODES.with(|n| *n.borrow_mut() = None);
        }
    }
    let _reset = Reset;
    let output = body();
    let nodes = NODES.with(|n| n.borrow_mut().take()).unwrap_or_default();
    GraphSpec {
        nodes,
        output,
        on_failure,
    }
}

/// The promise a workflow body gets for its input `name`.
pub fn input_promise<T>(name: &'static str) -> Promise<T> {
    Promise {
        src: Src::Input(name),
        _t: PhantomData,
    }
}

/// The binding of a workflow's or dynamic's returned value.
pub fn into_output<T, B: IntoBinding<T>>(b: B) -> Binding {
    b.into_binding()
}

/// A handle on an entity of this module, typed by its inputs `I` (a tuple) and output `O`:
/// what [`map`] takes. Every entity `foo` has `foo::entity()`.
///
/// ```
/// use sandflow::{task, Entity};
/// #[task]
/// pub fn add(a: i64, b: i64) -> i64 { a + b }
/// # fn main() {
/// let e: Entity<(i64, i64), i64> = add::entity();
/// assert_eq!(e.inputs, ["a", "b"]);
/// # }
/// ```
pub struct Entity<I, O> {
    #[doc(hidden)]
    pub name: &'static str,
    #[doc(hidden)]
    pub inputs: &'static [&'static str],
    #[doc(hidden)]
    pub _t: PhantomData<fn(I) -> O>,
}

/// Maps an entity (task, workflow, dynamic or launch plan) over list inputs; each element runs
/// as its own execution of the entity, in parallel.
///
/// ```
/// use sandflow::{map, task, workflow};
/// #[task]
/// pub fn mappable(a: i64) -> i64 { a + 2 }
///
/// #[workflow]
/// pub fn level2(l: Vec<i64>) -> Vec<i64> {
///     map(mappable::entity()).concurrency(10).over(l)
/// }
/// # fn main() {}
/// ```
pub fn map<I, O>(entity: Entity<I, O>) -> MapBuilder<I, O> {
    MapBuilder {
        entity: entity.name,
        inputs: entity.inputs,
        fixed: Vec::new(),
        spec: MapSpec {
            mapped: Vec::new(),
            concurrency: None,
            min_success_ratio: None,
            min_success: None,
        },
        _t: PhantomData,
    }
}

/// A map being set up; finish it with [`MapBuilder::over`] or [`MapBuilder::over_inputs`].
///
/// ```
/// use sandflow::{map, task, workflow};
/// #[task]
/// pub fn scale(a: i64, factor: i64) -> i64 { a * factor }
///
/// #[workflow]
/// pub fn scaled(l: Vec<i64>, factor: i64) -> Vec<Option<i64>> {
///     map(scale::entity())
///         .concurrency(8)
///         .fixed("factor", factor)
///         .min_success_ratio(0.9)
///         .over(l)
/// }
/// # fn main() {}
/// ```
pub struct MapBuilder<I, O> {
    entity: &'static str,
    inputs: &'static [&'static str],
    fixed: Vec<(&'static str, Binding)>,
    spec: MapSpec,
    _t: PhantomData<fn(I) -> O>,
}

impl<I, O> MapBuilder<I, O> {
    /// At most `n` elements run at once.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.spec.concurrency = Some(n);
        self
    }

    /// The map succeeds when at least `ceil(ratio * n)` elements do; failed elements are
    /// `None` in the output.
    pub fn min_success_ratio(self, ratio: f64) -> MapBuilder<I, Option<O>> {
        MapBuilder {
            entity: self.entity,
            inputs: self.inputs,
            fixed: self.fixed,
            spec: MapSpec {
                min_success_ratio: Some(ratio),
                ..self.spec
            },
            _t: PhantomData,
        }
    }

    /// The map succeeds when at least `n` elements do; failed elements are `None` in the
    /// output.
    pub fn min_success(self, n: u32) -> MapBuilder<I, Option<O>> {
        MapBuilder {
            entity: self.entity,
            inputs: self.inputs,
            fixed: self.fixed,
            spec: MapSpec {
                min_success: Some(n),
                ..self.spec
            },
            _t: PhantomData,
        }
    }

    /// Binds input `name` to the same value in every element.
    ///
    /// Panics (failing the workflow's description, or the dynamic's attempt, with this
    /// message) if the entity has no input `name`, so a typo is reported where it is made.
    #[track_caller]
    pub fn fixed<T>(mut self, name: &'static str, value: impl IntoBinding<T>) -> Self {
        self.check_input(name, "fixed");
        self.fixed.push((name, value.into_binding()));
        self
    }

    /// Panics naming the typo and the inputs there are, if the entity has no input `name`.
    #[track_caller]
    fn check_input(&self, name: &str, method: &str) {
        if !self.inputs.contains(&name) {
            panic!(
                "map({}).{method}(\"{name}\", ..): {} has no input `{name}`; its inputs are: {}",
                self.entity,
                self.entity,
                self.inputs.join(", ")
            );
        }
    }

    /// Maps over the one input not bound with [`MapBuilder::fixed`].
    pub fn over<A>(self, list: impl IntoBinding<Vec<A>>) -> Promise<Vec<O>> {
        let free: Vec<&'static str> = self
            .inputs
            .iter()
            .copied()
            .filter(|i| !self.fixed.iter().any(|(f, _)| f == i))
            .collect();
        match free.as_slice() {
            [one] => self.over_inputs(vec![(one, list.into_binding())]),
            _ => panic!(
                "map({}).over(..) needs exactly one input left unbound, found {:?}; use \
                 over_inputs to map several",
                self.entity, free
            ),
        }
    }

    /// Maps over several inputs at once, each bound to a list of the same length.
    ///
    /// Panics if the entity has no input of one of the names (see [`MapBuilder::fixed`]).
    #[track_caller]
    pub fn over_inputs(mut self, lists: Vec<(&'static str, Binding)>) -> Promise<Vec<O>> {
        for (name, _) in &lists {
            self.check_input(name, "over_inputs");
        }
        self.spec.mapped = lists.iter().map(|(n, _)| n.to_string()).collect();
        let mut inputs = self.fixed;
        inputs.extend(lists);
        add_node(self.entity, inputs, Some(self.spec))
    }
}
