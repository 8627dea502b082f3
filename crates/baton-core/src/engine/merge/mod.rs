//! From "task done" to "branch moved": the queue onto the integration
//! branch, verify batches and the checks after a merge.

pub(crate) mod batch;
pub(crate) mod lane;
pub(crate) mod queue;
pub(crate) mod resolve;
pub(crate) mod verify;
