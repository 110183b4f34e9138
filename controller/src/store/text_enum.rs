//! `str_enum!`: enums stored as text, with `as_str` for binding and `FromStr` /
//! `TryFrom<String>` (an unknown name is `InvalidInput`) for reading.

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl std::str::FromStr for $name {
            type Err = $crate::store::StoreError;
            fn from_str(s: &str) -> Result<Self, $crate::store::StoreError> {
                match s { $($s => Ok($name::$var),)+ _ => Err($crate::store::StoreError::InvalidInput(format!("unknown {} {s:?}", stringify!($name)))) }
            }
        }
        impl TryFrom<String> for $name {
            type Error = $crate::store::StoreError;
            fn try_from(s: String) -> Result<Self, $crate::store::StoreError> { s.parse() }
        }
    };
}
