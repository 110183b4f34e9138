//! BattlEye RCon: the packet codec, the async client the agent uses, and parsers for
//! the server's text answers and console messages.

pub mod packet;

pub use packet::{ClientPacket, CodecError, Part, ServerPacket, split_response};
