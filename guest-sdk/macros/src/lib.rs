//! Proc macros of the sandflow guest SDK. Each entity macro keeps the user's function (or
//! body) and adds a companion module of the same name holding `call`, `entity`, the entity's
//! declaration and, on wasm32, its two ABI exports. Mistakes are reported with spans.

mod expand;

use expand::expand;
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, FnArg, Ident, Lit, Meta, Pat, ReturnType, Token, Type};

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
/// Options: `on_failure = clean_up`, a task, workflow or dynamic the host runs once when the
/// workflow fails, with the workflow's inputs and `err: sandflow::WorkflowError` (Flyte's
/// failure node); `on_failure = "fail_fast" | "run_all"` (or `failure_policy = ..`), what a
/// failed node does to the rest of the graph.
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

/// `#[derive(SfType)]` on a struct with named fields makes it a record type; on an enum of unit
/// variants, an enum type (its values travel as variant indices, JSON shows their names).
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
    cache: Option<syn::LitBool>,
    cache_version: Option<syn::LitStr>,
    cache_ignore: Vec<syn::LitStr>,
    on_failure: Option<TokenStream2>,
    /// `on_failure = clean_up`: the workflow's failure handler.
    failure_handler: Option<syn::Path>,
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
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "cache") => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Bool(b), ..
                }) => o.cache = Some(b.clone()),
                other => return Err(syn::Error::new_spanned(other, "expected true or false")),
            },
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "cache_version") => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => o.cache_version = Some(s.clone()),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected the cache version as a string, e.g. \"1\"",
                    ))
                }
            },
            (Kind::Task | Kind::Dynamic, Meta::NameValue(nv), "cache_ignore") => {
                let Expr::Array(a) = &nv.value else {
                    return Err(syn::Error::new_spanned(
                        &nv.value,
                        "expected a list of input names, e.g. [\"seed\"]",
                    ));
                };
                for e in &a.elems {
                    match e {
                        Expr::Lit(syn::ExprLit {
                            lit: Lit::Str(s), ..
                        }) => o.cache_ignore.push(s.clone()),
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "expected an input name as a string",
                            ))
                        }
                    }
                }
            }
            (Kind::Workflow, Meta::NameValue(nv), "on_failure")
                if matches!(nv.value, Expr::Path(_)) =>
            {
                if let Expr::Path(p) = &nv.value {
                    o.failure_handler = Some(p.path.clone());
                }
            }
            (
                Kind::Workflow | Kind::Dynamic,
                Meta::NameValue(nv),
                "on_failure" | "failure_policy",
            ) => {
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
                    Kind::Task => "`retries = N`, `retry_on = \"any\" | \"user\" | \"system\"`, `timeout_ms = N`, `max_memory_mb = N`, `fuel = N`, `cache = true`, `cache_version = \"..\"` or `cache_ignore = [\"..\"]`",
                    Kind::Dynamic => "`retries = N`, `retry_on = ..`, `timeout_ms = N`, `max_memory_mb = N`, `fuel = N`, `cache = true`, `cache_version = \"..\"`, `cache_ignore = [..]` or `on_failure = \"fail_fast\" | \"run_all\"`",
                    Kind::Workflow => "`on_failure = <handler>` (a task or workflow run when the workflow fails) or `on_failure = \"fail_fast\" | \"run_all\"` (also `failure_policy = ..`)",
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
    /// `#[default(expr)]`: the value a caller may leave out.
    default: Option<Expr>,
}

/// Takes the `#[default(expr)]` attribute off a parameter (rustc knows no such attribute on
/// the function it keeps) and returns its expression.
fn take_default(kind: Kind, pt: &mut syn::PatType) -> syn::Result<Option<Expr>> {
    let mut found = None;
    let mut err = None;
    pt.attrs.retain(|a| {
        if !a.path().is_ident("default") {
            return true;
        }
        let parsed = if kind == Kind::LaunchPlan {
            Err(syn::Error::new_spanned(
                a,
                "a launch plan's defaults go in its attribute: #[launch_plan(wf, defaults(name = value))]",
            ))
        } else if found.is_some() {
            Err(syn::Error::new_spanned(a, "an input has at most one default"))
        } else {
            a.parse_args::<Expr>().map_err(|e| {
                syn::Error::new(e.span(), "expected one value: #[default(3)], #[default(\"x\")]")
            })
        };
        match parsed {
            Ok(e) => found = Some(e),
            Err(e) => err = err.take().or(Some(e)),
        }
        false
    });
    match err {
        Some(e) => Err(e),
        None => Ok(found),
    }
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

/// The inputs of `f`, whose `#[default(..)]` attributes are taken off.
fn args_of(kind: Kind, f: &mut syn::Signature) -> syn::Result<Vec<Arg>> {
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
        .iter_mut()
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
                Pat::Ident(id) => {
                    let name = id.ident.clone();
                    Ok(Arg {
                        name,
                        ty: (*pt.ty).clone(),
                        default: take_default(kind, pt)?,
                    })
                }
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
    let data =
        match &s.data {
            syn::Data::Struct(data) => data,
            syn::Data::Enum(e) => return derive_enum(name, e),
            syn::Data::Union(_) => return Err(syn::Error::new_spanned(
                &s.ident,
                "#[derive(SfType)] supports structs with named fields and enums of unit variants",
            )),
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
    let vis = &s.vis;
    let fields_trait = format_ident!("{}Fields", name);
    let promises = format_ident!("{}Promises", name);
    let indices: Vec<u32> = (0..n as u32).collect();
    let fields_doc = format!(
        "The fields of a `Promise<{name_str}>`, each a promise read by the host without a task \
         (Flyte's `res.field`). Added by `#[derive(SfType)]`; import it where the promise is used."
    );
    let promises_doc = format!(
        "A `{name_str}` built from promises or values, one per field (Flyte's \
         `{name_str}(field=promise, ..)`): bind it where a `{name_str}` is expected, or make it a \
         `Promise<{name_str}>` with `.into()`. Added by `#[derive(SfType)]`."
    );
    let field_docs: Vec<String> = strs
        .iter()
        .map(|f| format!("A promise of field `{f}`."))
        .collect();
    Ok(quote! {
        #[doc = #fields_doc]
        #[allow(dead_code)]
        #vis trait #fields_trait {
            #( #[doc = #field_docs] fn #idents(&self) -> ::sandflow::Promise<#tys>; )*
        }

        impl #fields_trait for ::sandflow::Promise<#name> {
            #( fn #idents(&self) -> ::sandflow::Promise<#tys> {
                #p::field(*self, #strs, #indices)
            } )*
        }

        #[doc = #promises_doc]
        #[allow(dead_code)]
        #vis struct #promises {
            #( pub #idents: ::sandflow::Promise<#tys> ),*
        }

        impl ::sandflow::IntoBinding<#name> for #promises {
            fn into_binding(self) -> #p::Binding {
                #p::Binding::Record(vec![#( ::sandflow::IntoBinding::<#tys>::into_binding(self.#idents) ),*])
            }
        }

        impl ::core::convert::From<#promises> for ::sandflow::Promise<#name> {
            fn from(p: #promises) -> Self {
                #p::record(vec![#( ::sandflow::IntoBinding::<#tys>::into_binding(p.#idents) ),*])
            }
        }

        impl ::sandflow::IntoBinding<#name> for #name {
            fn into_binding(self) -> #p::Binding {
                #p::Binding::Literal(::sandflow::SfType::into_value(self))
            }
        }

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

/// An enum of unit variants: its values are variant indices, in declaration order.
fn derive_enum(name: &Ident, e: &syn::DataEnum) -> syn::Result<TokenStream2> {
    if e.variants.is_empty() {
        return Err(syn::Error::new_spanned(
            name,
            "#[derive(SfType)] needs an enum with at least one variant (an empty enum has no values to pass)",
        ));
    }
    let one_value =
        |v: &syn::Variant| matches!(&v.fields, syn::Fields::Unnamed(f) if f.unnamed.len() == 1);
    if e.variants.iter().all(one_value) {
        return derive_union(name, e);
    }
    if let Some(v) = e
        .variants
        .iter()
        .find(|v| !matches!(v.fields, syn::Fields::Unit))
    {
        return Err(syn::Error::new_spanned(
            &v.fields,
            format!(
                "#[derive(SfType)] takes an enum of unit variants (`Latte`), or one whose variants each hold one value (`Circle(f64)`, a tagged union); `{}` is neither, or the variants are mixed",
                v.ident
            ),
        ));
    }
    let name_str = name.to_string();
    let idents: Vec<&Ident> = e.variants.iter().map(|v| &v.ident).collect();
    let strs: Vec<String> = idents.iter().map(|i| i.to_string()).collect();
    let indices: Vec<u32> = (0..idents.len() as u32).collect();
    let listing = format!("{name_str} (one of {})", strs.join(", "));
    let p = quote!(::sandflow::__private);
    Ok(quote! {
        impl ::sandflow::IntoBinding<#name> for #name {
            fn into_binding(self) -> #p::Binding {
                #p::Binding::Literal(::sandflow::SfType::into_value(self))
            }
        }

        impl ::sandflow::SfType for #name {
            fn sf_type() -> #p::Type {
                #p::Type::Enum(#p::contract::EnumType {
                    name: #name_str.to_string(),
                    variants: vec![#( #strs.to_string() ),*],
                })
            }
            fn into_value(self) -> #p::Value {
                #p::Value::Enum(match self { #( #name::#idents => #indices ),* })
            }
            fn from_value(v: #p::Value) -> ::core::result::Result<Self, ::std::string::String> {
                match v {
                    #( #p::Value::Enum(#indices) => Ok(#name::#idents), )*
                    #p::Value::Enum(i) => Err(format!("expected {}, found variant index {}", #listing, i)),
                    other => Err(format!("expected enum {}, found {}", #name_str, other.kind())),
                }
            }
        }
    })
}

/// An enum whose variants each hold one value (`Circle(f64)`): a tagged union, whose values
/// are a variant index and the value it holds.
fn derive_union(name: &Ident, e: &syn::DataEnum) -> syn::Result<TokenStream2> {
    let name_str = name.to_string();
    let idents: Vec<&Ident> = e.variants.iter().map(|v| &v.ident).collect();
    let strs: Vec<String> = idents.iter().map(|i| i.to_string()).collect();
    let tys: Vec<&Type> = e
        .variants
        .iter()
        .filter_map(|v| match &v.fields {
            syn::Fields::Unnamed(f) => f.unnamed.first().map(|f| &f.ty),
            _ => None,
        })
        .collect();
    let indices: Vec<u32> = (0..idents.len() as u32).collect();
    let p = quote!(::sandflow::__private);
    Ok(quote! {
        impl ::sandflow::IntoBinding<#name> for #name {
            fn into_binding(self) -> #p::Binding {
                #p::Binding::Literal(::sandflow::SfType::into_value(self))
            }
        }

        impl ::sandflow::SfType for #name {
            fn sf_type() -> #p::Type {
                #p::Type::Union(#p::contract::UnionType {
                    name: #name_str.to_string(),
                    variants: vec![#( (#strs.to_string(), <#tys as ::sandflow::SfType>::sf_type()) ),*],
                })
            }
            fn into_value(self) -> #p::Value {
                match self {
                    #( #name::#idents(x) => #p::Value::Union(#indices, ::std::boxed::Box::new(::sandflow::SfType::into_value(x))), )*
                }
            }
            fn from_value(v: #p::Value) -> ::core::result::Result<Self, ::std::string::String> {
                match v {
                    #( #p::Value::Union(#indices, x) => <#tys as ::sandflow::SfType>::from_value(*x)
                        .map(#name::#idents)
                        .map_err(|e| format!(".{}: {}", #strs, e)), )*
                    #p::Value::Union(i, _) => Err(format!(
                        "expected {}, found variant index {}",
                        <Self as ::sandflow::SfType>::sf_type(),
                        i
                    )),
                    other => Err(format!("expected union {}, found {}", #name_str, other.kind())),
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
