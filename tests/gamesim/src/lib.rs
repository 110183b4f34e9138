//! Simulators of game dedicated servers, faithful enough that our own clients and
//! third-party clients (tests/interop) agree with them.
