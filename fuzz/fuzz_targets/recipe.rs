//! A recipe's decoder and its checks (what every member runs on a recipe request's bytes,
//! and what a builder runs before it writes a file): never panic; a recipe that decodes
//! encodes back to the same bytes, and its request names it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synchronicity::request::PinnedRequest;
use synchronicity::verify::recipe::Recipe;

fuzz_target!(|data: &[u8]| {
    if let Ok(recipe) = Recipe::from_cbor(data) {
        assert_eq!(recipe.to_cbor(), data);
        let _ = recipe.check_contents();
        let pinned = PinnedRequest::for_recipe(&recipe, 1);
        assert_eq!(pinned.request.recipe_id(), Some(recipe.id()));
        let _ = pinned.validate();
    }
});
