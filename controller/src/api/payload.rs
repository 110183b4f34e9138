//! `PreJson<T>`: a JSON response whose body was serialised beforehand (so it can be cached
//! and reused), documented and encoded exactly like `poem_openapi::payload::Json<T>`.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};

/// A serialised `T` (the bytes `Json<T>` would have produced).
pub struct PreJson<T> {
    body: Bytes,
    _t: PhantomData<fn() -> T>,
}

impl<T: ToJSON> PreJson<T> {
    /// Serialises `value` the way `Json<T>` does.
    pub fn encode(value: &T) -> Bytes {
        serde_json::to_vec(&value.to_json())
            .unwrap_or_default()
            .into()
    }

    /// Serialises `value` now.
    pub fn new(value: &T) -> Self {
        Self::from_bytes(Self::encode(value))
    }

    /// Wraps bytes produced by [`PreJson::encode`].
    pub fn from_bytes(body: Bytes) -> Self {
        Self {
            body,
            _t: PhantomData,
        }
    }
}

impl<T: Type> Payload for PreJson<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for PreJson<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(<Json<String> as Payload>::CONTENT_TYPE)
            .body(Body::from_bytes(self.body))
    }
}

impl<T: ToJSON> ApiResponse for PreJson<T> {
    fn meta() -> MetaResponses {
        <Json<T> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
