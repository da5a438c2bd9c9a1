import unittest

import greet_pp


class MessageTest(unittest.TestCase):
    def test_message(self):
        self.assertEqual(greet_pp.message(), "hello from pyproject")
