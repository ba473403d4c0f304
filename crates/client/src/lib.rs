//! The network from an EPJ system's side: HelseID system-client credentials and DPoP-bound
//! tokens, and the MSH API v2. The CLI's `helsenett msg` and the benchmarks use it; an EPJ
//! vendor can read it as a worked example of the protocol.

pub mod credentials;
pub mod helseid;
pub mod jose;
pub mod msh;

pub use credentials::{SystemClient, client_of, load_clients};
pub use helseid::Tokens;
pub use msh::{Listed, Msh};
