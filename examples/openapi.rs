//! Prints promsync's OpenAPI document (the one `GET /api/openapi.json` answers) to stdout,
//! without a server, database or broker, so tools can check it:
//!
//! ```text
//! cargo run --quiet --example openapi > openapi.json
//! openapi-spec-validator openapi.json
//! ```

fn main() {
    println!("{}", promsync::api::openapi::document_json());
}
