//! Proc macros of the sandflow guest SDK. Each entity macro keeps the user's function (or
//! body) and adds a companion module of the same name holding `call`, `entity`, the entity's
//! declaration and, on wasm32, its two ABI exports. Mistakes are reported with spans.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use sandflow_contract::abi;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, Lit, Meta, Pat, ReturnType, Token, Type, Visibility};

/// A task: a plain Rust function run in its own sandbox, still callable as plain Rust.
///
/// ```text
/// #[task(retries = 2, retry_on = "user", timeout_ms = 500, max_memory_mb = 64, fuel = 1_000_000)]
/// pub fn step1(a: i64) -> i64 { a + 1 }
/// ```
///
/// Options: `retries = N` (extra attempts), `retry_on = "any" | "user" | "system"` (which
/// failures a retry is spent on), `timeout_ms = N`, `max_memory_mb = N`, `fuel = N` (a
/// deterministic CPU budget). A task may return `Result<T, E: Display>`: `Err` fails the attempt
/// with the error's message. Adds `step1::call(..)` (a graph node) and `step1::entity()`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Task, attr.into(), item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// A workflow: a static graph, built once (when the host describes the module) from typed
/// promises; its parameters are `Promise`s inside the body.
///
/// ```text
/// #[workflow(on_failure = "run_all")]
/// pub fn core_wf(a: i64) -> i64 { step2::call(step1::call(a)) }
/// ```
///
/// Option: `on_failure = "fail_fast" | "run_all"`.
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Workflow, attr.into(), item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// A dynamic workflow: runs with real inputs in a sandbox and returns the graph it builds,
/// which the host compiles and runs as the node's children.
///
/// ```text
/// #[dynamic]
/// pub fn level2(l: Vec<i64>) -> Vec<i64> {
///     l.into_iter().map(core_wf_lp::call).collect::<Vec<_>>()
/// }
/// ```
///
/// Options: those of `#[task]`, and `on_failure = "fail_fast" | "run_all"` for its graph.
#[proc_macro_attribute]
pub fn dynamic(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Dynamic, attr.into(), item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// A launch plan over a workflow, declared as a body-less function with the inputs callers
/// pass: `#[launch_plan(core_wf, defaults(b = 3), fixed(c = "x"), max_parallelism = 10)]
/// pub fn core_wf_lp(a: i64) -> i64;`
#[proc_macro_attribute]
pub fn launch_plan(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::LaunchPlan, attr.into(), item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// `#[derive(SfType)]` on a struct with named fields makes it a record type.
#[proc_macro_derive(SfType)]
pub fn derive_sf_type(item: TokenStream) -> TokenStream {
    derive(item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Task,
    Workflow,
    Dynamic,
    LaunchPlan,
}

#[derive(Default)]
struct Options {
    retries: Option<Expr>,
    timeout_ms: Option<Expr>,
    max_memory_mb: Option<Expr>,
    fuel: Option<Expr>,
    retry_on: Option<TokenStream2>,
    on_failure: Option<TokenStream2>,
    workflow: Option<syn::Path>,
    defaults: Vec<(Ident, Expr)>,
    fixed: Vec<(Ident, Expr)>,
    max_parallelism: Option<Expr>,
}

fn parse_options(kind: Kind, attr: TokenStream2) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut o = Options::default();
    for meta in metas {
        let key = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match (kind, &meta, key.as_str()) {
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "retries") => {
                o.retries = Some(nv.value.clone())
            }
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "timeout_ms") => {
                o.timeout_ms = Some(nv.value.clone())
            }
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "max_memory_mb") => {
                o.max_memory_mb = Some(nv.value.clone())
            }
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "fuel") => {
                o.fuel = Some(nv.value.clone())
            }
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "retry_on") => {
                let variant = match str_lit(&nv.value).as_deref() {
                    Some("any") => quote!(Any),
                    Some("user") => quote!(UserErrors),
                    Some("system") => quote!(SystemErrors),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "expected \"any\", \"user\" or \"system\"",
                        ))
                    }
                };
                o.retry_on = Some(quote!(::sandflow::__private::contract::RetryOn::#variant));
            }
            (Kind::Workflow | Kind::Dynamic, Meta::NameValue(nv), "on_failure") => {
                let variant = match str_lit(&nv.value).as_deref() {
                    Some("fail_fast") => quote!(FailFast),
                    Some("run_all") => quote!(RunAll),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "expected \"fail_fast\" or \"run_all\"",
                        ))
                    }
                };
                o.on_failure =
                    Some(quote!(::sandflow::__private::contract::FailurePolicy::#variant));
            }
            (Kind::LaunchPlan, Meta::Path(p), _) if o.workflow.is_none() => {
                o.workflow = Some(p.clone())
            }
            (Kind::LaunchPlan, Meta::NameValue(nv), "workflow") => match &nv.value {
                Expr::Path(p) => o.workflow = Some(p.path.clone()),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected the workflow's name",
                    ))
                }
            },
            (Kind::LaunchPlan, Meta::NameValue(nv), "max_parallelism") => {
                o.max_parallelism = Some(nv.value.clone())
            }
            (Kind::LaunchPlan, Meta::List(l), "defaults" | "fixed") => {
                let pairs = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated
                    .parse2(l.tokens.clone())?;
                let mut out = Vec::new();
                for nv in pairs {
                    let Some(id) = nv.path.get_ident() else {
                        return Err(syn::Error::new_spanned(&nv.path, "expected an input name"));
                    };
                    out.push((id.clone(), nv.value));
                }
                if key == "defaults" {
                    o.defaults = out
                } else {
                    o.fixed = out
                }
            }
            _ => {
                let expected = match kind {
                    Kind::Task => "`retries = N`, `retry_on = \"any\" | \"user\" | \"system\"`, `timeout_ms = N`, `max_memory_mb = N` or `fuel = N`",
                    Kind::Dynamic => "`retries = N`, `retry_on = ..`, `timeout_ms = N`, `max_memory_mb = N`, `fuel = N` or `on_failure = \"fail_fast\" | \"run_all\"`",
                    Kind::Workflow => "`on_failure = \"fail_fast\" | \"run_all\"`",
                    Kind::LaunchPlan => {
                        "the workflow's name, `defaults(name = value, ..)`, `fixed(name = value, ..)` or `max_parallelism = N`"
                    }
                };
                return Err(syn::Error::new_spanned(
                    &meta,
                    format!("unknown option; expected {expected}"),
                ));
            }
        }
    }
    if kind == Kind::LaunchPlan && o.workflow.is_none() {
        return Err(syn::Error::new(
            Span::call_site(),
            "a launch plan names its workflow: #[launch_plan(my_workflow)]",
        ));
    }
    Ok(o)
}

struct Arg {
    name: Ident,
    ty: Type,
}

/// The declared output: `()` (none), `T`, or `Result<T, E>` for a fallible task.
struct Output {
    ty: Option<Type>,
    fallible: bool,
}

fn output_of(ret: &ReturnType, kind: Kind) -> Output {
    let ReturnType::Type(_, ty) = ret else {
        return Output {
            ty: None,
            fallible: false,
        };
    };
    if kind == Kind::Task {
        if let Type::Path(p) = &**ty {
            if let Some(seg) = p.path.segments.last() {
                if seg.ident == "Result" {
                    if let syn::PathArguments::AngleBracketed(a) = &seg.arguments {
                        if let Some(syn::GenericArgument::Type(t)) = a.args.first() {
                            let unit = matches!(t, Type::Tuple(tt) if tt.elems.is_empty());
                            return Output {
                                ty: (!unit).then(|| t.clone()),
                                fallible: true,
                            };
                        }
                    }
                }
            }
        }
    }
    let unit = matches!(&**ty, Type::Tuple(tt) if tt.elems.is_empty());
    Output {
        ty: (!unit).then(|| (**ty).clone()),
        fallible: false,
    }
}

fn args_of(f: &syn::Signature) -> syn::Result<Vec<Arg>> {
    if !f.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &f.generics,
            "sandflow entities cannot be generic: their interface must be concrete",
        ));
    }
    if let Some(a) = &f.asyncness {
        return Err(syn::Error::new_spanned(
            a,
            "sandflow entities are synchronous functions",
        ));
    }
    f.inputs
        .iter()
        .map(|a| match a {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(_) if owned(&pt.ty).is_some() => Err(syn::Error::new_spanned(
                    &pt.ty,
                    format!(
                        "sandflow inputs are owned values passed between sandboxes: take `{}` instead of `{}`",
                        owned(&pt.ty).unwrap_or_default(),
                        type_text(&pt.ty)
                    ),
                )),
                Pat::Ident(id) => Ok(Arg {
                    name: id.ident.clone(),
                    ty: (*pt.ty).clone(),
                }),
                other => Err(syn::Error::new_spanned(
                    other,
                    "expected a plain input name (`name: Type`)",
                )),
            },
            FnArg::Receiver(r) => Err(syn::Error::new_spanned(
                r,
                "sandflow entities are free functions, not methods",
            )),
        })
        .collect()
}

/// The owned type to suggest for a reference type (`&str` -> `String`, `&[T]` -> `Vec<T>`,
/// `&T` -> `T`), or `None` if `ty` is not a reference.
fn owned(ty: &Type) -> Option<String> {
    let Type::Reference(r) = ty else { return None };
    Some(match &*r.elem {
        Type::Path(p) if p.path.is_ident("str") => "String".into(),
        Type::Slice(s) => format!("Vec<{}>", type_text(&s.elem)),
        other => type_text(other),
    })
}

/// A type as the user would write it: `Vec<i64>`, not `Vec < i64 >`.
fn type_text(ty: &Type) -> String {
    let mut s = quote!(#ty).to_string();
    for (from, to) in [
        (" < ", "<"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        (" :: ", "::"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The parts of an entity's item the expansion works from.
struct Entity {
    kind: Kind,
    opts: Options,
    vis: Visibility,
    sig: syn::Signature,
    block: Option<Box<syn::Block>>,
    attrs: Vec<syn::Attribute>,
    args: Vec<Arg>,
    out: Output,
}

/// What one kind of entity adds to the common expansion.
#[derive(Default)]
struct KindParts {
    /// The user's function, kept as plain Rust (tasks).
    plain: TokenStream2,
    /// The `EntityKind` of the declaration.
    kind_decl: TokenStream2,
    /// The body of `__invoke` after the arguments are decoded (tasks and dynamics).
    invoke: TokenStream2,
    /// Items added to the companion module.
    extra: TokenStream2,
    /// Items next to the companion module (a launch plan's check of its workflow's path).
    check: TokenStream2,
}

fn expand(kind: Kind, attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let e = parse_entity(kind, attr, item)?;
    let parts = match kind {
        Kind::Task => task_parts(&e),
        Kind::Dynamic => dynamic_parts(&e),
        Kind::Workflow => workflow_parts(&e),
        Kind::LaunchPlan => launch_plan_parts(&e),
    };
    Ok(companion_module(&e, parts))
}

/// Parses the options and the item, and checks its signature.
fn parse_entity(kind: Kind, attr: TokenStream2, item: TokenStream2) -> syn::Result<Entity> {
    let opts = parse_options(kind, attr)?;
    // A launch plan is a body-less declaration; parse it as a foreign-style signature.
    let (vis, sig, block, attrs) = if kind == Kind::LaunchPlan {
        let f: syn::ForeignItemFn = syn::parse2(item)?;
        (f.vis, f.sig, None, f.attrs)
    } else {
        let f: ItemFn = syn::parse2(item)?;
        (f.vis, f.sig, Some(f.block), f.attrs)
    };
    let args = args_of(&sig)?;
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some(o) = owned(ty) {
            return Err(syn::Error::new_spanned(
                ty,
                format!(
                    "sandflow outputs are owned values passed between sandboxes: return `{o}` instead of `{}`",
                    type_text(ty)
                ),
            ));
        }
    }
    let out = output_of(&sig.output, kind);
    Ok(Entity {
        kind,
        opts,
        vis,
        sig,
        block,
        attrs,
        args,
        out,
    })
}

fn private() -> TokenStream2 {
    quote!(::sandflow::__private)
}

impl Entity {
    fn name(&self) -> &Ident {
        &self.sig.ident
    }
    fn name_str(&self) -> String {
        self.sig.ident.to_string()
    }
    fn arg_names(&self) -> Vec<&Ident> {
        self.args.iter().map(|a| &a.name).collect()
    }
    fn arg_strs(&self) -> Vec<String> {
        self.args.iter().map(|a| a.name.to_string()).collect()
    }
    fn arg_tys(&self) -> Vec<&Type> {
        self.args.iter().map(|a| &a.ty).collect()
    }
    fn out_ty(&self) -> TokenStream2 {
        match &self.out.ty {
            Some(t) => quote!(#t),
            None => quote!(()),
        }
    }
    fn has_call_export(&self) -> bool {
        matches!(self.kind, Kind::Task | Kind::Dynamic)
    }

    /// The entity's typed interface.
    fn interface(&self) -> TokenStream2 {
        let p = private();
        let (arg_strs, arg_tys) = (self.arg_strs(), self.arg_tys());
        let output = match &self.out.ty {
            Some(t) => quote!(Some(<#t as ::sandflow::SfType>::sf_type())),
            None => quote!(None),
        };
        quote! {
            #p::Interface {
                inputs: vec![#( #p::Param { name: #arg_strs.to_string(), ty: <#arg_tys as ::sandflow::SfType>::sf_type() } ),*],
                output: #output,
            }
        }
    }

    /// A task's or dynamic's retries and limits.
    fn task_config(&self) -> TokenStream2 {
        let (p, opts) = (private(), &self.opts);
        let some_or_none = |e: &Option<Expr>| match e {
            Some(e) => quote!(Some(#e)),
            None => quote!(None),
        };
        let retries = opts
            .retries
            .as_ref()
            .map(|e| quote!(#e))
            .unwrap_or(quote!(0));
        let timeout = some_or_none(&opts.timeout_ms);
        let memory = some_or_none(&opts.max_memory_mb);
        let fuel = some_or_none(&opts.fuel);
        let retry_on = opts
            .retry_on
            .clone()
            .unwrap_or(quote!(#p::contract::RetryOn::Any));
        quote!(#p::TaskConfig { retries: #retries, retry_on: #retry_on, timeout_ms: #timeout, max_memory_mb: #memory, fuel: #fuel })
    }

    fn failure_policy(&self) -> TokenStream2 {
        let p = private();
        self.opts
            .on_failure
            .clone()
            .unwrap_or(quote!(#p::contract::FailurePolicy::FailFast))
    }

    /// The graph-building body shared by workflows and dynamics.
    fn graph_body(&self) -> TokenStream2 {
        let p = private();
        let block = &self.block;
        let ret = match &self.out.ty {
            Some(t) => quote!(Some(#p::into_output::<#t, _>(__out))),
            None => quote!({
                let () = __out;
                None
            }),
        };
        quote! {
            #[allow(unused_mut, clippy::redundant_closure_call)]
            let __out = (move || #block)();
            #ret
        }
    }
}

fn task_parts(e: &Entity) -> KindParts {
    let p = private();
    let (attrs, vis, sig, block) = (&e.attrs, &e.vis, &e.sig, &e.block);
    let (name, arg_names) = (e.name(), e.arg_names());
    // The answer, encoded: a task's output is written straight from its Rust value.
    let error = quote!(#p::encode_call_result(&#p::contract::CallResult::Error(e.to_string())));
    let nothing = quote!(#p::encode_call_result(&#p::contract::CallResult::Output(None)));
    let wrap = match (&e.out.ty, e.out.fallible) {
        (Some(_), false) => quote!(#p::encode_output(__r)),
        (None, false) => quote!({ let () = __r; #nothing }),
        (Some(_), true) => quote!(match __r {
            Ok(v) => #p::encode_output(v),
            Err(e) => #error,
        }),
        (None, true) => quote!(match __r {
            Ok(()) => #nothing,
            Err(e) => #error,
        }),
    };
    let config = e.task_config();
    KindParts {
        plain: quote!(#(#attrs)* #vis #sig #block),
        kind_decl: quote!(#p::EntityKind::Task(#config)),
        invoke: quote! {
            let __r = super::#name(#(#arg_names),*);
            #wrap
        },
        ..KindParts::default()
    }
}

fn dynamic_parts(e: &Entity) -> KindParts {
    let p = private();
    let (attrs, arg_names, arg_tys) = (&e.attrs, e.arg_names(), e.arg_tys());
    let (config, policy, body) = (e.task_config(), e.failure_policy(), e.graph_body());
    KindParts {
        kind_decl: quote!(#p::EntityKind::Dynamic(#config)),
        extra: quote! {
            /// The graph this dynamic returns for these inputs (for tests of the guest crate).
            #(#attrs)*
            pub fn graph(#(#arg_names: #arg_tys),*) -> #p::contract::GraphSpec {
                #p::build_graph(#policy, move || { #body })
            }
        },
        invoke: quote!(#p::encode_call_result(&#p::contract::CallResult::Graph(graph(#(#arg_names),*)))),
        ..KindParts::default()
    }
}

fn workflow_parts(e: &Entity) -> KindParts {
    let p = private();
    let (arg_names, arg_strs, arg_tys) = (e.arg_names(), e.arg_strs(), e.arg_tys());
    let (policy, body) = (e.failure_policy(), e.graph_body());
    KindParts {
        kind_decl: quote!(#p::EntityKind::Workflow(__graph())),
        extra: quote! {
            fn __graph() -> #p::contract::GraphSpec {
                #p::build_graph(#policy, move || {
                    #( let #arg_names: ::sandflow::Promise<#arg_tys> = #p::input_promise(#arg_strs); )*
                    #body
                })
            }
        },
        ..KindParts::default()
    }
}

fn launch_plan_parts(e: &Entity) -> KindParts {
    let p = private();
    let opts = &e.opts;
    let wf = opts.workflow.as_ref().expect("checked in parse_options");
    // Entity names are global in a module: a path (`stats::inc_wf`) locates the workflow in
    // Rust, its last segment is its name. `check` makes a wrong path a compile error rather
    // than a load-time one.
    let wf_str = wf
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let wf_entity = quote_spanned!(wf.span()=> #wf::entity);
    let lit = |pairs: &[(Ident, Expr)]| {
        let items = pairs.iter().map(|(n, e)| {
            let n = n.to_string();
            let e = literal_value(e);
            quote!((#n.to_string(), ::sandflow::SfType::into_value(#e)))
        });
        quote!(vec![#(#items),*])
    };
    let defaults = lit(&opts.defaults);
    let fixed = lit(&opts.fixed);
    let maxp = opts
        .max_parallelism
        .as_ref()
        .map(|e| quote!(Some(#e)))
        .unwrap_or(quote!(None));
    KindParts {
        kind_decl: quote!(#p::EntityKind::LaunchPlan(#p::LaunchPlanSpec {
            workflow: #wf_str.to_string(),
            defaults: #defaults,
            fixed: #fixed,
            max_parallelism: #maxp,
        })),
        check: quote! {
            const _: () = {
                let _ = #wf_entity;
            };
        },
        ..KindParts::default()
    }
}

/// `__invoke`: decodes a call's arguments, then runs `invoke` (tasks and dynamics).
fn invoke_fn(e: &Entity, invoke: &TokenStream2) -> TokenStream2 {
    if !e.has_call_export() {
        return TokenStream2::new();
    }
    let p = private();
    let (name_str, n_args) = (e.name_str(), e.args.len());
    let (arg_names, arg_strs, arg_tys) = (e.arg_names(), e.arg_strs(), e.arg_tys());
    quote! {
        #[allow(dead_code)]
        fn __invoke(__bytes: &[u8]) -> i64 {
            let __fail = |e: String| #p::encode_call_result(&#p::contract::CallResult::Error(e));
            #[allow(unused_mut)]
            let mut __args = match #p::Args::new(__bytes, #name_str, #n_args) {
                Ok(a) => a,
                Err(e) => return __fail(e),
            };
            #(
                let #arg_names: #arg_tys = match __args.next::<#arg_tys>(#arg_strs) {
                    Ok(v) => v,
                    Err(e) => return __fail(e),
                };
            )*
            if let Err(e) = __args.finish() {
                return __fail(e);
            }
            #invoke
        }
    }
}

/// The wasm32 exports, named as the contract's ABI says ([`abi::DECL_PREFIX`],
/// [`abi::CALL_PREFIX`]). They carry the entity's name span: two entities of one name (in
/// different Rust modules) make rustc report "symbol `sandflow:decl:x` is already defined" at
/// the second.
fn exports(e: &Entity) -> TokenStream2 {
    let p = private();
    let (name, name_str) = (e.name(), e.name_str());
    let decl_export = format!("{}{name_str}", abi::DECL_PREFIX);
    let call_fn = if e.has_call_export() {
        let export = format!("{}{name_str}", abi::CALL_PREFIX);
        quote_spanned! {name.span()=>
            #[cfg(target_arch = "wasm32")]
            #[export_name = #export]
            extern "C" fn __call_export(ptr: u32, len: u32) -> i64 {
                // SAFETY: the host calls this export with a buffer from `sandflow_alloc`.
                unsafe { #p::call_entity(ptr, len, __invoke) }
            }
        }
    } else {
        TokenStream2::new()
    };
    quote_spanned! {name.span()=>
        #call_fn
        #[cfg(target_arch = "wasm32")]
        #[export_name = #decl_export]
        extern "C" fn __decl_export() -> i64 {
            #p::decl_entity(__decl)
        }
    }
}

/// The user's item as kept, and the companion module of the entity's name.
fn companion_module(e: &Entity, parts: KindParts) -> TokenStream2 {
    let p = private();
    let (name, name_str) = (e.name(), e.name_str());
    let (arg_names, arg_strs, arg_tys) = (e.arg_names(), e.arg_strs(), e.arg_tys());
    let out_ty = e.out_ty();
    let mod_vis = match &e.vis {
        Visibility::Inherited => quote!(pub(super)),
        v => quote!(#v),
    };
    let doc = format!(
        "Graph-building handle on the sandflow {} `{name_str}`.",
        match e.kind {
            Kind::Task => "task",
            Kind::Workflow => "workflow",
            Kind::Dynamic => "dynamic",
            Kind::LaunchPlan => "launch plan",
        }
    );
    let call_args = e.args.iter().map(|a| {
        let (n, t) = (&a.name, &a.ty);
        quote_spanned!(t.span()=> #n: impl ::sandflow::IntoBinding<#t>)
    });
    let interface = e.interface();
    let invoke = invoke_fn(e, &parts.invoke);
    let exports = exports(e);
    let KindParts {
        plain,
        kind_decl,
        extra,
        check,
        ..
    } = parts;

    quote! {
        #plain
        #check

        #[doc = #doc]
        #[allow(non_snake_case, clippy::all)]
        #mod_vis mod #name {
            #[allow(unused_imports)]
            use super::*;

            /// Adds a call of this entity to the graph being built and returns its promise.
            #[allow(clippy::too_many_arguments)]
            pub fn call(#(#call_args),*) -> ::sandflow::Promise<#out_ty> {
                #p::add_node(#name_str, vec![#( (#arg_strs, ::sandflow::IntoBinding::<#arg_tys>::into_binding(#arg_names)) ),*], None)
            }

            /// This entity as a value, for `sandflow::map`.
            pub fn entity() -> ::sandflow::Entity<(#(#arg_tys,)*), #out_ty> {
                ::sandflow::Entity { name: #name_str, inputs: &[#(#arg_strs),*], _t: ::core::marker::PhantomData }
            }

            #[doc(hidden)]
            pub fn __decl() -> #p::EntityDecl {
                #p::EntityDecl { name: #name_str.to_string(), interface: #interface, kind: #kind_decl }
            }

            #extra
            #invoke
            #exports
        }
    }
}

/// Unsuffixed literals in launch plan options take sandflow's types (i64, f64, String).
fn literal_value(e: &Expr) -> TokenStream2 {
    if let Expr::Lit(l) = e {
        match &l.lit {
            Lit::Int(i) if i.suffix().is_empty() => {
                let d = i.base10_digits();
                let v: TokenStream2 = format!("{d}i64").parse().expect("digits parse");
                return v;
            }
            Lit::Float(f) if f.suffix().is_empty() => {
                let v: TokenStream2 = format!("{}f64", f.base10_digits())
                    .parse()
                    .expect("digits parse");
                return v;
            }
            Lit::Str(s) => return quote!(::std::string::String::from(#s)),
            _ => {}
        }
    }
    if let Expr::Unary(u) = e {
        if matches!(u.op, syn::UnOp::Neg(_)) {
            let inner = literal_value(&u.expr);
            return quote!(-#inner);
        }
    }
    quote!(#e)
}

fn derive(item: TokenStream2) -> syn::Result<TokenStream2> {
    let s: syn::DeriveInput = syn::parse2(item)?;
    let name = &s.ident;
    let name_str = name.to_string();
    if !s.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &s.generics,
            "SfType records cannot be generic",
        ));
    }
    let syn::Data::Struct(data) = &s.data else {
        return Err(syn::Error::new_spanned(
            &s.ident,
            "#[derive(SfType)] supports structs with named fields",
        ));
    };
    let syn::Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            &data.fields,
            "#[derive(SfType)] needs named fields",
        ));
    };
    let idents: Vec<&Ident> = fields
        .named
        .iter()
        .map(|f| f.ident.as_ref().expect("named"))
        .collect();
    let strs: Vec<String> = idents.iter().map(|i| i.to_string()).collect();
    let tys: Vec<&Type> = fields.named.iter().map(|f| &f.ty).collect();
    let n = idents.len();
    let tmp: Vec<Ident> = idents.iter().map(|i| format_ident!("__f_{}", i)).collect();
    let p = quote!(::sandflow::__private);
    Ok(quote! {
        impl ::sandflow::SfType for #name {
            fn sf_type() -> #p::Type {
                #p::Type::Record(#p::contract::RecordType {
                    name: #name_str.to_string(),
                    fields: vec![#( (#strs.to_string(), <#tys as ::sandflow::SfType>::sf_type()) ),*],
                })
            }
            fn into_value(self) -> #p::Value {
                #p::Value::Record(vec![#( ::sandflow::SfType::into_value(self.#idents) ),*])
            }
            fn from_value(v: #p::Value) -> ::core::result::Result<Self, ::std::string::String> {
                match v {
                    #p::Value::Record(vals) if vals.len() == #n => {
                        let mut it = vals.into_iter();
                        #( let #tmp = <#tys as ::sandflow::SfType>::from_value(it.next().expect("length checked"))
                            .map_err(|e| format!(".{}: {}", #strs, e))?; )*
                        Ok(#name { #( #idents: #tmp ),* })
                    }
                    other => Err(format!("expected record {}, found {}", #name_str, other.kind())),
                }
            }
        }
    })
}

fn str_lit(e: &Expr) -> Option<String> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        _ => None,
    }
}
