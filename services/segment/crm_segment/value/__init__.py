"""Value score: purchase value, engagement and social contribution combined into 0-100."""
