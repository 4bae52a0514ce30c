"""Jinja2 VHDL templates and static VHDL files, installed as package data."""
