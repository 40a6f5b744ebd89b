//! Models people already have, read into specs: diffusers' `UNet2DModel` configs
//! ([`diffusers`]), with the JSON layout scanner ([`json`]) that keeps every finding and fix
//! pointing at the config's own lines.

pub mod diffusers;
pub mod json;
