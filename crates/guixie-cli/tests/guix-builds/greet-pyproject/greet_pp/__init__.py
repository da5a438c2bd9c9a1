def message():
    return "hello from pyproject"


def main():
    print(message())
