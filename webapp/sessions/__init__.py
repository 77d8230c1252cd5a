"""Sessions (课次) of a series and the lectures (讲座) inside them."""
