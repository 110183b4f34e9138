//! The Arma config reader and writer (`shared/src/arma/config/syntax.rs`) and the
//! importers built on it (server.cfg, basic.cfg, `.Arma3Profile`, BEServer.cfg): an
//! admin uploads these files, so their text is outside input.
//!
//! Properties: never panics; the generic parser never accepts a text whose rendering
//! it then reads differently (render is validated, so a value can never end its entry
//! early); each importer's model, rendered, imports back to the same model.
#![no_main]

use languard_shared::arma::config::syntax;
use languard_shared::arma::config::{Arma3Profile, BasicConfig, BattlEyeConfig, ServerConfig};
use libfuzzer_sys::fuzz_target;

/// `parse(render(parse(text))) == parse(text)` for one typed model.
macro_rules! model_round_trip {
    ($ty:ty, $text:expr) => {
        if let Ok((model, _warnings)) = <$ty>::parse($text) {
            if let Ok(rendered) = model.render() {
                match <$ty>::parse(&rendered) {
                    Ok((again, _)) => assert!(
                        again == model,
                        "{} renders to text that imports differently:\n{rendered}",
                        stringify!($ty)
                    ),
                    Err(e) => panic!(
                        "{} renders to text it cannot import ({e}):\n{rendered}",
                        stringify!($ty)
                    ),
                }
            }
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(items) = syntax::parse(text)
        && let Ok(rendered) = syntax::render(&items, "fuzz")
    {
        match syntax::parse(&rendered) {
            Ok(again) => assert_eq!(again, items, "rendered:\n{rendered}"),
            Err(e) => panic!("renders to text it cannot read ({e}):\n{rendered}"),
        }
    }
    model_round_trip!(ServerConfig, text);
    model_round_trip!(BasicConfig, text);
    model_round_trip!(Arma3Profile, text);
    model_round_trip!(BattlEyeConfig, text);
});
