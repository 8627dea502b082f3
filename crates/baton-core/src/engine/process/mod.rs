//! One child process group and what surrounds it: the sandbox it runs in
//! ([`jail`]), its supervision, its output, and the gates run the same way.

pub(crate) mod cell;
pub(crate) mod gates;
pub(crate) mod jail;
pub(crate) mod output;
pub(crate) mod supervise;
pub(crate) mod writer;
