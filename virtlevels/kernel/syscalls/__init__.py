"""System calls: numbers, the one table shared by scripted and ISA processes, and the handlers."""
