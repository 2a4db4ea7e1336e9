//! Components shared by the pages, one family per file.

pub mod copy_button;
pub mod hydration;
pub mod message_card;
pub mod qr_code;
