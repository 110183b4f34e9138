//! BattlEye RCon: the packet codec, the async client the agent uses, and parsers for
//! the server's text answers and console messages.

pub mod client;
pub mod packet;
pub mod parse;

pub use packet::{ClientPacket, CodecError, Part, ServerPacket, split_response};
