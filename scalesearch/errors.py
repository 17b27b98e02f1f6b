class UserError(ValueError):
    """Something the user typed or pointed at is wrong. The CLI prints it as one line, exit code 2."""
