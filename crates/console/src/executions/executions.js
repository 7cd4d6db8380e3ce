// executions
