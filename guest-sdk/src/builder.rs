//! Building graphs from typed promises: what `foo::call(..)` does inside a workflow or a
//! dynamic. A workflow body runs once, when the host describes the module; a dynamic body runs
//! in its sandbox with real inputs. Either way the calls it makes are recorded as nodes.

use crate::types::SfType;
use sandflow_contract::{Binding, FailurePolicy, GraphSpec, MapSpec, NodeSpec, Value};
use std::cell::RefCell;
use std::marker::PhantomData;

thread_local! {
    /// The nodes of the graph being built; `None` outside a workflow or dynamic body.
    pub(crate) static NODES: RefCell<Option<Vec<NodeSpec>>> = const { RefCell::new(None) };
    /// The bindings of the promises that are neither a node nor an input (a constant, a part
    /// of another promise, a record or list built from promises), by [`Src::Expr`] index:
    /// kept aside so that a promise stays `Copy`.
    static EXPRS: RefCell<Vec<Binding>> = const { RefCell::new(Vec::new()) };
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
    /// A binding in `EXPRS`.
    Expr(u32),
}

impl Src {
    pub(crate) fn binding(self) -> Binding {
        match self {
            Src::Node(i) => Binding::Node(i),
            Src::Input(name) => Binding::Input(name.to_string()),
            Src::Expr(i) => EXPRS.with(|e| {
                e.borrow().get(i as usize).cloned().unwrap_or_else(|| {
                    panic!("a promise of another graph's body was used (its part #{i} is gone)")
                })
            }),
        }
    }
}

/// A promise of the value `binding` gives.
fn expr<T>(binding: Binding) -> Promise<T> {
    let i = EXPRS.with(|e| {
        let mut e = e.borrow_mut();
        e.push(binding);
        e.len() - 1
    });
    Promise {
        src: Src::Expr(i as u32),
        _t: PhantomData,
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
                 and a workflow input, a constant or a part of a promise cannot wait or be \
                 waited for",
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

impl<T: SfType> Promise<T> {
    /// A promise of a plain value, for where a promise is expected: a constant in a list of
    /// promises, or one branch of a dynamic that needs no call. No task runs for it.
    ///
    /// ```
    /// use sandflow::{dynamic, task, Promise};
    /// #[task]
    /// pub fn inc(a: i64) -> i64 { a + 1 }
    /// #[task]
    /// pub fn sum(l: Vec<i64>) -> i64 { l.iter().sum() }
    ///
    /// #[dynamic]
    /// pub fn incs_and_zeros(l: Vec<i64>) -> i64 {
    ///     let parts: Vec<Promise<i64>> = l
    ///         .into_iter()
    ///         .map(|x| if x > 0 { inc::call(x) } else { Promise::value(0) })
    ///         .collect();
    ///     sum::call(parts)
    /// }
    /// # fn main() {}
    /// ```
    pub fn value(v: T) -> Promise<T> {
        expr(Binding::Literal(v.into_value()))
    }
}

impl<T> Promise<Vec<T>> {
    /// Element `index` of the list this promise gives (Flyte's `res[0]`), read by the host
    /// without a task; an index out of range fails the node that reads it.
    ///
    /// ```
    /// use sandflow::{task, workflow};
    /// #[task]
    /// pub fn list_task() -> Vec<String> { vec!["apple".into(), "banana".into()] }
    /// #[task]
    /// pub fn print_message(message: String) { println!("{message}") }
    ///
    /// #[workflow]
    /// pub fn list_wf() {
    ///     print_message::call(list_task::call().at(0));
    /// }
    /// # fn main() {}
    /// ```
    pub fn at(self, index: u32) -> Promise<T> {
        if let Some(part) = known_part(self.src, |b| match b {
            Binding::List(items) => items.get(index as usize).cloned(),
            Binding::Literal(Value::List(items)) => {
                items.get(index as usize).cloned().map(Binding::Literal)
            }
            _ => None,
        }) {
            return expr(part);
        }
        expr(Binding::Index {
            of: Box::new(self.src.binding()),
            index,
        })
    }
}

impl<T> Promise<std::collections::BTreeMap<String, T>> {
    /// The value under `key` of the map this promise gives (Flyte's `res["key"]`), read by the
    /// host without a task; a missing key fails the node that reads it.
    pub fn get(self, key: &str) -> Promise<T> {
        key_of(self.src, key)
    }
}

impl<T> Promise<std::collections::HashMap<String, T>> {
    /// The value under `key` of the map this promise gives (Flyte's `res["key"]`), read by the
    /// host without a task; a missing key fails the node that reads it.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use sandflow::{task, workflow};
    /// #[task]
    /// pub fn dict_task() -> HashMap<String, String> {
    ///     HashMap::from([("fruit".to_string(), "banana".to_string())])
    /// }
    /// #[task]
    /// pub fn print_message(message: String) { println!("{message}") }
    ///
    /// #[workflow]
    /// pub fn dict_wf() {
    ///     print_message::call(dict_task::call().get("fruit"));
    /// }
    /// # fn main() {}
    /// ```
    pub fn get(self, key: &str) -> Promise<T> {
        key_of(self.src, key)
    }
}

/// The part `pick` finds of a constant or a value built from promises (`src`), known while
/// the graph is built: reading it needs no binding of its own. `None` for a node's output or a
/// workflow input, which the host reads when the node that needs it is ready.
fn known_part(src: Src, pick: impl FnOnce(&Binding) -> Option<Binding>) -> Option<Binding> {
    let Src::Expr(i) = src else { return None };
    EXPRS.with(|e| e.borrow().get(i as usize).and_then(pick))
}

fn key_of<T>(src: Src, key: &str) -> Promise<T> {
    if let Some(part) = known_part(src, |b| match b {
        Binding::Map(entries) => entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, b)| b.clone()),
        Binding::Literal(Value::Map(m)) => m.get(key).cloned().map(Binding::Literal),
        _ => None,
    }) {
        return expr(part);
    }
    expr(Binding::Key {
        of: Box::new(src.binding()),
        key: key.to_string(),
    })
}

/// A promise of field `index` (named `name`) of the record `of` promises: what the accessor
/// methods `#[derive(SfType)]` adds (`res.slope()`) and [`Promise::split`] call.
pub fn field<R, T>(of: Promise<R>, name: &str, index: u32) -> Promise<T> {
    // A field of a record built from promises is the promise it was built from; a field of
    // a constant is a constant.
    if let Some(part) = known_part(of.src, |b| match b {
        Binding::Record(items) => items.get(index as usize).cloned(),
        Binding::Literal(Value::Record(vals)) => {
            vals.get(index as usize).cloned().map(Binding::Literal)
        }
        _ => None,
    }) {
        return expr(part);
    }
    expr(Binding::Field {
        of: Box::new(of.src.binding()),
        name: name.to_string(),
        index,
    })
}

/// A promise of the record built from `fields`, one binding per field in order: what the
/// `<Record>Promises` struct `#[derive(SfType)]` adds becomes.
pub fn record<R>(fields: Vec<Binding>) -> Promise<R> {
    expr(Binding::Record(fields))
}

macro_rules! tuple_promises {
    ($($p:ident $t:ident $i:tt),+) => {
        impl<$($t),+> Promise<($($t,)+)> {
            /// The elements of the tuple this promise gives, each a promise of its own (Flyte's
            /// `a, b = t()`), read by the host without a task.
            ///
            /// ```
            /// use sandflow::{task, workflow};
            /// #[task]
            /// pub fn div_mod(a: i64, b: i64) -> (i64, i64) { (a / b, a % b) }
            /// #[task]
            /// pub fn add(a: i64, b: i64) -> i64 { a + b }
            ///
            /// #[workflow]
            /// pub fn sum_of_parts(a: i64, b: i64) -> i64 {
            ///     let (q, r) = div_mod::call(a, b).split();
            ///     add::call(q, r)
            /// }
            /// # fn main() {}
            /// ```
            pub fn split(self) -> ($(Promise<$t>,)+) {
                ($(field(self, stringify!($i), $i),)+)
            }
        }

        /// A tuple of promises or values is bound as the tuple they give (a workflow returning
        /// `(slope_value, intercept_value)`).
        impl<$($t,)+ $($p: IntoBinding<$t>,)+> IntoBinding<($($t,)+)> for ($($p,)+) {
            fn into_binding(self) -> Binding {
                Binding::Record(vec![$(self.$i.into_binding()),+])
            }
        }
    };
}

tuple_promises!(P0 T0 0, P1 T1 1);
tuple_promises!(P0 T0 0, P1 T1 1, P2 T2 2);
tuple_promises!(P0 T0 0, P1 T1 1, P2 T2 2, P3 T3 3);

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

    /// The binding of a call's input; `None` leaves it unbound, to its default
    /// ([`UseDefault`]). Not needed in user code.
    #[doc(hidden)]
    fn into_input(self) -> Option<Binding>
    where
        Self: Sized,
    {
        Some(self.into_binding())
    }
}

/// Leaves an input of a call unbound, so that it takes its default (Flyte's leaving a
/// defaulted argument out); an input without a default is then a load-time error naming it.
///
/// ```
/// use sandflow::{task, workflow, UseDefault};
/// #[task]
/// pub fn add(a: i64, #[default(3)] b: i64) -> i64 { a + b }
///
/// #[workflow]
/// pub fn add_three(a: i64) -> i64 {
///     add::call(a, UseDefault)
/// }
/// # fn main() {}
/// ```
#[derive(Clone, Copy, Debug)]
pub struct UseDefault;

impl<T> IntoBinding<T> for UseDefault {
    fn into_binding(self) -> Binding {
        panic!("`UseDefault` leaves an input of a call unbound; it is not a value")
    }
    fn into_input(self) -> Option<Binding> {
        None
    }
}

/// A plain value is bound as a literal. Implemented type by type rather than for every
/// `SfType`, so that a tuple of promises can be bound to a tuple input (see
/// [`Promise::split`]); `#[derive(SfType)]` adds it for records and enums.
macro_rules! literal_bindings {
    ($($t:ty),*) => {$(
        impl IntoBinding<$t> for $t {
            fn into_binding(self) -> Binding {
                Binding::Literal(self.into_value())
            }
        }
    )*};
}

literal_bindings!(i64, f64, bool, String, crate::Bytes);

impl<T: SfType> IntoBinding<Vec<T>> for Vec<T> {
    fn into_binding(self) -> Binding {
        Binding::Literal(self.into_value())
    }
}

impl<T: SfType> IntoBinding<Option<T>> for Option<T> {
    fn into_binding(self) -> Binding {
        Binding::Literal(self.into_value())
    }
}

impl<K, T> IntoBinding<std::collections::BTreeMap<K, T>> for std::collections::BTreeMap<K, T>
where
    std::collections::BTreeMap<K, T>: SfType,
{
    fn into_binding(self) -> Binding {
        Binding::Literal(self.into_value())
    }
}

impl<K, T> IntoBinding<std::collections::HashMap<K, T>> for std::collections::HashMap<K, T>
where
    std::collections::HashMap<K, T>: SfType,
{
    fn into_binding(self) -> Binding {
        Binding::Literal(self.into_value())
    }
}

/// A `&str` is bound to a `String` input as the string it holds.
impl IntoBinding<String> for &str {
    fn into_binding(self) -> Binding {
        Binding::Literal(sandflow_contract::Value::Str(self.to_string()))
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
pub fn add_node<T>(
    entity: &str,
    inputs: Vec<(&str, Option<Binding>)>,
    map: Option<MapSpec>,
) -> Promise<T> {
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
                .filter_map(|(n, b)| Some((n.to_string(), b?)))
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
            EXPRS.with(|e| e.borrow_mut().clear());
        }
    }
    let _reset = Reset;
    EXPRS.with(|e| e.borrow_mut().clear());
    let output = body();
    let nodes = NODES.with(|n| n.borrow_mut().take()).unwrap_or_default();
    GraphSpec {
        nodes,
        output,
        on_failure,
        failure_handler: None,
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
        let inputs = self
            .fixed
            .into_iter()
            .chain(lists)
            .map(|(n, b)| (n, Some(b)))
            .collect();
        add_node(self.entity, inputs, Some(self.spec))
    }
}
