//! Request body processors: URLENCODED, MULTIPART, JSON, XML.
//!
//! Each turns a buffered body into the variables rules inspect (ARGS_POST,
//! FILES, MULTIPART_*, XML) with bounded memory, and reports malformed input
//! as data (REQBODY_ERROR / MULTIPART_STRICT_ERROR flags), never as a panic.
