//! The SDK's macros reject what they cannot turn into an entity with a message on the
//! offending tokens; `tests/ui/*.stderr` pin those messages.

#[test]
fn macro_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

mod path_qualified {
    use sandflow::{launch_plan, task, workflow};

    pub mod stats {
        use super::*;

        #[task]
        pub fn inc(a: i64) -> i64 {
            a + 1
        }

        #[workflow]
        pub fn inc_wf(a: i64) -> i64 {
            inc::call(a)
        }
    }

    #[launch_plan(stats::inc_wf)]
    pub fn inc_lp(a: i64) -> i64;

    /// A path locates the workflow; the workflow is named by its module path less the crate.
    #[test]
    fn a_launch_plan_names_a_path_qualified_workflow_by_its_module_path() {
        let decl = inc_lp::__decl();
        let sandflow::__private::EntityKind::LaunchPlan(lp) = decl.kind else {
            panic!("not a launch plan");
        };
        assert_eq!(lp.workflow, "path_qualified::stats::inc_wf");
        assert_eq!(inc_lp::NAME, "path_qualified::inc_lp");
    }
}

mod map_typo {
    use sandflow::{dynamic, map, task};

    #[task]
    pub fn scale(a: i64, factor: i64) -> i64 {
        a * factor
    }

    #[dynamic]
    pub fn scaled(l: Vec<i64>) -> Vec<i64> {
        map(scale::entity()).fixed("factr", 2).over(l)
    }

    #[test]
    fn a_map_fixed_typo_names_the_typo_and_the_inputs() {
        let e = std::panic::catch_unwind(|| scaled::graph(vec![1])).unwrap_err();
        let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(
            msg,
            "map(map_typo::scale).fixed(\"factr\", ..): map_typo::scale has no input `factr`; its inputs are: a, factor"
        );
    }
}

mod unit_enums {
    use sandflow::__private::{contract::EnumType, Type, Value};
    use sandflow::SfType;

    #[derive(SfType, Debug, PartialEq)]
    enum Coffee {
        Latte,
        Espresso,
        Cappuccino,
    }

    #[test]
    fn a_unit_enum_is_an_enum_type_of_its_variants_in_order() {
        assert_eq!(
            Coffee::sf_type(),
            Type::Enum(EnumType {
                name: "Coffee".into(),
                variants: vec!["Latte".into(), "Espresso".into(), "Cappuccino".into()],
            })
        );
        assert_eq!(Coffee::Espresso.into_value(), Value::Enum(1));
        assert_eq!(Coffee::from_value(Value::Enum(2)), Ok(Coffee::Cappuccino));
    }

    #[test]
    fn reading_an_enum_names_what_was_wrong() {
        assert_eq!(
            Coffee::from_value(Value::Enum(3)).unwrap_err(),
            "expected Coffee (one of Latte, Espresso, Cappuccino), found variant index 3"
        );
        assert_eq!(
            Coffee::from_value(Value::Str("Latte".into())).unwrap_err(),
            "expected enum Coffee, found a string"
        );
    }
}
