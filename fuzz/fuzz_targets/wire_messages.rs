//! Decoding a frame's JSON payload into the `shared::wire` link messages: what a
//! connected (or enrolling, hence unauthenticated) peer controls byte for byte.
//!
//! Properties: never panics (serde_json's recursion limit keeps nesting off the stack);
//! whatever decodes re-encodes into a frame that decodes to an equal message (no
//! message the controller accepts becomes a different one on the way back out, e.g.
//! when stored and replayed); `Debug` of any decoded message works.
#![no_main]

use languard_shared::wire::frame::{HEADER_LEN, MAX_FRAME_LEN, decode, encode_frame};
use languard_shared::wire::link::{AgentMessage, ControllerMessage};
use languard_shared::wire::{EventEnvelope, Request, Response, ServerSpec};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(payload: &[u8]) {
    let Ok(m) = decode::<M>(payload) else {
        return;
    };
    let _ = format!("{m:?}");
    let frame = encode_frame(&m, MAX_FRAME_LEN).expect("a decoded message encodes");
    let len = u32::from_be_bytes(frame[..HEADER_LEN].try_into().expect("4 bytes"));
    assert_eq!(len as usize, frame.len() - HEADER_LEN);
    let again: M = decode(&frame[HEADER_LEN..]).expect("our own encoding decodes");
    assert_eq!(
        again,
        m,
        "re-encoded as {}",
        String::from_utf8_lossy(&frame[HEADER_LEN..])
    );
}

fuzz_target!(|data: &[u8]| {
    round_trip::<AgentMessage>(data);
    round_trip::<ControllerMessage>(data);
    round_trip::<Request>(data);
    round_trip::<Response>(data);
    round_trip::<EventEnvelope>(data);
    round_trip::<ServerSpec>(data);
});
