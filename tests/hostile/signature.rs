//! The webhook door's signature check costs a bounded amount of work, whatever the header.
