"""The demo data: the Lugouqiao township cloud classroom (卢沟桥乡云课堂)."""
