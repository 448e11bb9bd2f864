"""Real servers, containers and processes for the tests and the benchmarks alike: started on free local ports,
stopped whole, and checked for what they leave behind."""
