//! The network from an EPJ system's side: HelseID system-client credentials and DPoP-bound
//! tokens, and the MSH API v2. The CLI's `helsenett msg` and the benchmarks use it; an EPJ
//! vendor can read it as a worked example of the protocol.

mod api;
pub mod credentials;
pub mod directory;
pub mod helseid;
pub mod jose;
pub mod member;
pub mod msh;

pub use credentials::{SystemClient, client_of, load_clients};
pub use directory::Directory;
pub use helseid::Tokens;
pub use member::{Member, Received, Sent};
pub use msh::{Listed, Msh};
