"""Pure domain logic: no Kafka, no I/O, no clock, no randomness."""
