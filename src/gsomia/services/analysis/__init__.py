"""Analysis of the record: agreement status, routes, coverage, gaps, statistics, what-ifs and
the impact report; loading and validating scenarios."""
