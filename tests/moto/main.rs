//! Integration tests against moto_server: the rotator driven as Secrets Manager drives it.

mod rotation;
mod support;
