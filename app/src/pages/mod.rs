//! The two pages: [`landing`] (make or enter a code) and [`room`] (the conversation).

pub mod landing;
pub mod room;
