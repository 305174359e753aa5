"""attnq's built-in generic domain: any gymnasium env with a Box observation and Discrete actions."""
