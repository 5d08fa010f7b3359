//! Entity names: an entity is named by its Rust module path less the crate's name
//! (`conditional::shape_properties`; an entity at the crate's root keeps its plain name), so
//! two entities of one short name in different Rust modules are two entities.

/// The entity name of the companion module at `module_path` (what `module_path!()` gives
/// inside it, `my_crate::conditional::t1`): the path less its first segment. Evaluated at
/// compile time.
pub const fn entity_name(module_path: &'static str) -> &'static str {
    let bytes = module_path.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b':' && bytes[i + 1] == b':' {
            let (_, rest) = bytes.split_at(i + 2);
            return match core::str::from_utf8(rest) {
                Ok(name) => name,
                // Unreachable: the split is right after an ASCII `::`.
                Err(_) => module_path,
            };
        }
        i += 1;
    }
    module_path
}

#[cfg(test)]
mod tests {
    use super::entity_name;

    #[test]
    fn the_crate_is_left_out_of_an_entity_name() {
        assert_eq!(entity_name("my_crate::t1"), "t1");
        assert_eq!(entity_name("my_crate::conditional::t1"), "conditional::t1");
        assert_eq!(entity_name("t1"), "t1");
    }
}
