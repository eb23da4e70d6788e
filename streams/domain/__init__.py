"""Pure domain logic: no faust, no Kafka, no I/O, no clock, no randomness."""
