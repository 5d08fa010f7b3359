//! The expansion of the entity macros, step by step: parse the item, the parts its kind adds
//! (a task's plain function and result encoding, a graph builder, a launch plan's spec), the
//! argument-decoding `__invoke`, the ABI exports, and the companion module around them.

use super::{args_of, literal_value, output_of, owned, parse_options, type_text};
use super::{Arg, Kind, Options, Output};
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use sandflow_contract::abi;
use syn::spanned::Spanned;
use syn::{Expr, Ident, ItemFn, ReturnType, Type, Visibility};

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

pub(super) fn expand(
    kind: Kind,
    attr: TokenStream2,
    item: TokenStream2,
) -> syn::Result<TokenStream2> {
    let e = parse_entity(kind, attr, item)?;
    let parts = match kind {
        Kind::Task => task_parts(&e),
        Kind::Dynamic => dynamic_parts(&e),
        Kind::Workflow => workflow_parts(&e),
        Kind::LaunchPlan => launch_plan_parts(&e),
    };
    Ok(companion_module(&e, parts))
}

/// `cache_version` and `cache_ignore` go with `cache = true`, and every ignored name is an
/// input of the task: a typo would silently leave an input in the key.
fn check_cache_options(opts: &Options, args: &[Arg]) -> syn::Result<()> {
    let on = opts.cache.as_ref().is_some_and(|b| b.value);
    if !on {
        if let Some(v) = &opts.cache_version {
            return Err(syn::Error::new_spanned(
                v,
                "cache_version needs `cache = true`",
            ));
        }
        if let Some(i) = opts.cache_ignore.first() {
            return Err(syn::Error::new_spanned(
                i,
                "cache_ignore needs `cache = true`",
            ));
        }
    }
    for name in &opts.cache_ignore {
        if !args.iter().any(|a| a.name == name.value()) {
            let inputs: Vec<String> = args.iter().map(|a| a.name.to_string()).collect();
            return Err(syn::Error::new_spanned(
                name,
                format!(
                    "cache_ignore names `{}`, which is not an input; the inputs are: {}",
                    name.value(),
                    inputs.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Parses the options and the item, and checks its signature.
fn parse_entity(kind: Kind, attr: TokenStream2, item: TokenStream2) -> syn::Result<Entity> {
    let opts = parse_options(kind, attr)?;
    // A launch plan is a body-less declaration; parse it as a foreign-style signature.
    let (vis, mut sig, block, attrs) = if kind == Kind::LaunchPlan {
        let f: syn::ForeignItemFn = syn::parse2(item)?;
        (f.vis, f.sig, None, f.attrs)
    } else {
        let f: ItemFn = syn::parse2(item)?;
        (f.vis, f.sig, Some(f.block), f.attrs)
    };
    let args = args_of(kind, &mut sig)?;
    check_cache_options(&opts, &args)?;
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
        let defaults = self.args.iter().map(default_value);
        let output = match &self.out.ty {
            Some(t) => quote!(Some(<#t as ::sandflow::SfType>::sf_type())),
            None => quote!(None),
        };
        quote! {
            #p::Interface {
                inputs: vec![#( #p::Param { name: #arg_strs.to_string(), ty: <#arg_tys as ::sandflow::SfType>::sf_type(), default: #defaults } ),*],
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
        let cache = match &opts.cache {
            Some(b) if b.value => {
                let version = opts
                    .cache_version
                    .as_ref()
                    .map(|v| v.value())
                    .unwrap_or_default();
                let ignore = opts.cache_ignore.iter().map(|s| s.value());
                quote!(Some(#p::contract::CacheConfig {
                    version: ::std::string::String::from(#version),
                    ignore: vec![#(::std::string::String::from(#ignore)),*],
                }))
            }
            _ => quote!(None),
        };
        quote!(#p::TaskConfig { retries: #retries, retry_on: #retry_on, timeout_ms: #timeout, max_memory_mb: #memory, fuel: #fuel, cache: #cache })
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

/// An input's default as a `Value`, built through the input's own Rust type: a default of
/// another type is a type error rustc reports at the default's tokens.
fn default_value(a: &Arg) -> TokenStream2 {
    let Some(e) = &a.default else {
        return quote!(None);
    };
    let ty = &a.ty;
    // A string literal stands for a `String` input's value, as in launch plan options.
    let value = match e {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => quote_spanned!(s.span()=> ::std::string::String::from(#s)),
        e => quote!(#e),
    };
    quote_spanned! {e.span()=>
        Some({
            let __default: #ty = #value;
            ::sandflow::SfType::into_value(__default)
        })
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
    // Like a launch plan's workflow, the handler's path is read next to the workflow's
    // companion module, so a wrong path is a compile error; its interface is checked at load.
    let (kind_decl, check) = match &e.opts.failure_handler {
        Some(h) => {
            let h_const = quote::format_ident!("__sandflow_failure_handler_of_{}", e.name());
            let h_name = quote_spanned!(h.span()=> #h::NAME);
            (
                quote!(#p::EntityKind::Workflow({
                    let mut g = __graph();
                    g.failure_handler = Some(super::#h_const.to_string());
                    g
                })),
                quote! {
                    #[doc(hidden)]
                    #[allow(non_upper_case_globals)]
                    const #h_const: &str = #h_name;
                },
            )
        }
        None => (
            quote!(#p::EntityKind::Workflow(__graph())),
            TokenStream2::new(),
        ),
    };
    KindParts {
        kind_decl,
        check,
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
    // The workflow's path is written from the launch plan's module; its name is read there
    // (`check`), so a wrong path is a compile error rather than a load-time one.
    let wf_name = quote_spanned!(wf.span()=> #wf::NAME);
    let wf_const = quote::format_ident!("__sandflow_workflow_of_{}", e.name());
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
            workflow: super::#wf_const.to_string(),
            defaults: #defaults,
            fixed: #fixed,
            max_parallelism: #maxp,
        })),
        check: quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            const #wf_const: &str = #wf_name;
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
    let n_args = e.args.len();
    let (arg_names, arg_strs, arg_tys) = (e.arg_names(), e.arg_strs(), e.arg_tys());
    quote! {
        #[allow(dead_code)]
        fn __invoke(__bytes: &[u8]) -> i64 {
            let __fail = |e: String| #p::encode_call_result(&#p::contract::CallResult::Error(e));
            #[allow(unused_mut)]
            let mut __args = match #p::Args::new(__bytes, NAME, #n_args) {
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
/// [`abi::CALL_PREFIX`]) with the companion module's Rust path as the symbol
/// (`my_crate::conditional::t1`): unique in the crate, so two entities of one short name in
/// different Rust modules export different symbols.
fn exports(e: &Entity) -> TokenStream2 {
    let p = private();
    let name = e.name();
    let (decl_prefix, call_prefix) = (abi::DECL_PREFIX, abi::CALL_PREFIX);
    let call_fn = if e.has_call_export() {
        quote_spanned! {name.span()=>
            #[cfg(target_arch = "wasm32")]
            #[export_name = concat!(#call_prefix, module_path!())]
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
        #[export_name = concat!(#decl_prefix, module_path!())]
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

            /// The entity's name: its Rust module path less the crate
            /// (`conditional::shape_properties`).
            pub const NAME: &str = #p::entity_name(module_path!());

            /// Adds a call of this entity to the graph being built and returns its promise.
            #[allow(clippy::too_many_arguments)]
            pub fn call(#(#call_args),*) -> ::sandflow::Promise<#out_ty> {
                #p::add_node(NAME, vec![#( (#arg_strs, ::sandflow::IntoBinding::<#arg_tys>::into_input(#arg_names)) ),*], None)
            }

            /// This entity as a value, for `sandflow::map`.
            pub fn entity() -> ::sandflow::Entity<(#(#arg_tys,)*), #out_ty> {
                ::sandflow::Entity { name: NAME, inputs: &[#(#arg_strs),*], _t: ::core::marker::PhantomData }
            }

            #[doc(hidden)]
            pub fn __decl() -> #p::EntityDecl {
                #p::EntityDecl { name: NAME.to_string(), interface: #interface, kind: #kind_decl }
            }

            #extra
            #invoke
            #exports
        }
    }
}
