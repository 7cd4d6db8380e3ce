// flows
